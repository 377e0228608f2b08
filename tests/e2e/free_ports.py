#!/usr/bin/env python3
# free_ports.py N: N distinct free TCP ports on 127.0.0.1, one a line (cluster.sh's free_ports
# says how they are chosen).
import random, socket, sys

try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(x) for x in f.read().split())
except (OSError, ValueError):
    low, high = 32768, 60999
candidates = [(10000, low - 1)] if low > 11000 else [(high + 1, 65535)]
socks = []
for lo, hi in candidates:
    for _ in range(1000):
        if len(socks) == int(sys.argv[1]):
            break
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", random.randint(lo, hi)))
            socks.append(s)
        except OSError:
            s.close()
while len(socks) < int(sys.argv[1]):  # fall back on the kernel's choice
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
