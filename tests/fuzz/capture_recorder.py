# The recording endpoint of capture_corpus.sh: HTTPS on 127.0.0.1:PORT; saves each request body
# as DIR/NNNN-PATH.json and answers an AdmissionReview that allows the request.
# Usage: capture_recorder.py PORT DIR CERT KEY
import http.server, json, os, ssl, sys

port, directory, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
count = 0

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        count += 1
        name = "%04d-%s.json" % (count, self.path.split("?")[0].strip("/").replace("/", "-") or "root")
        with open(os.path.join(directory, name), "wb") as f:
            f.write(body)
        review = json.loads(body)
        answer = json.dumps({"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
                             "response": {"uid": review["request"]["uid"], "allowed": True}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, fmt, *args):
        sys.stderr.write("recorder: " + (fmt % args) + "\n")

server = http.server.HTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("recorder: listening", flush=True)
server.serve_forever()
