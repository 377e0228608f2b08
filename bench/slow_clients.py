#!/usr/bin/env python3
"""What idle and slow clients cost a legitimate review: the latency of reviews sent one after
the other on one kept-alive HTTPS connection, first alone, then while N other connections are
open: a third plain TCP connections that never start TLS, a third TLS connections that never
send a request, a third slowloris clients that send a request's headers a byte every 200 ms.

    bench/slow_clients.py URL CA_FILE BODY_FILE [--others 200] [--requests 400]

Prints p50, p99 and max for both phases and how many of the others were still open at the end
(a server that cut them off sooner measured less). Asserts nothing; exit 1 when a review fails.
"""
import argparse
import http.client
import socket
import ssl
import statistics
import threading
import time
import urllib.parse


def reviews(url, context, body, n):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=context, timeout=30)
    took = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", u.path, body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        took.append(time.perf_counter() - t0)
        if answer.status != 200:
            raise SystemExit(f"slow_clients: HTTP {answer.status}")
    conn.close()
    took.sort()
    return took


def summary(took):
    p = lambda q: took[min(len(took) - 1, int(q * len(took)))] * 1e3
    return f"p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {took[-1] * 1e3:.2f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("ca")
    ap.add_argument("body")
    ap.add_argument("--others", type=int, default=200)
    ap.add_argument("--requests", type=int, default=400)
    a = ap.parse_args()
    context = ssl.create_default_context(cafile=a.ca)
    body = open(a.body, "rb").read()
    u = urllib.parse.urlsplit(a.url)

    reviews(a.url, context, body, 50)  # warm-up
    alone = reviews(a.url, context, body, a.requests)

    others, stop = [], threading.Event()
    third = a.others // 3
    for _ in range(third):
        others.append(socket.create_connection((u.hostname, u.port)))
    for _ in range(third):
        others.append(context.wrap_socket(socket.create_connection((u.hostname, u.port)),
                                          server_hostname=u.hostname))
    slow = []
    for _ in range(a.others - 2 * third):
        s = context.wrap_socket(socket.create_connection((u.hostname, u.port)),
                                server_hostname=u.hostname)
        s.sendall(f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\n".encode())
        slow.append(s)
    others += slow

    def trickle():  # one byte per slow client every 200 ms, for as long as the server allows
        while not stop.wait(0.2):
            for s in list(slow):
                try:
                    s.send(b"x")
                except OSError:
                    slow.remove(s)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    beside = reviews(a.url, context, body, a.requests)
    stop.set()
    t.join()
    still = 0
    for s in others:
        try:
            s.setblocking(False)
            still += 0 if s.recv(1) == b"" else 1
        except (BlockingIOError, ssl.SSLWantReadError):
            still += 1  # nothing to read: open
        except OSError:
            pass
        finally:
            s.close()
    print(f"reviews alone:                     {summary(alone)}")
    print(f"beside {a.others} idle and slow connections: {summary(beside)} "
          f"({still} of them still open at the end)")
    print(f"added: p50 {(statistics.median(beside) - statistics.median(alone)) * 1e3:+.2f} ms, "
          f"p99 {(beside[int(0.99 * len(beside))] - alone[int(0.99 * len(alone))]) * 1e3:+.2f} ms")


if __name__ == "__main__":
    main()
