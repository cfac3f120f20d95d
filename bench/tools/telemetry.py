#!/usr/bin/python3
"""A minimal DPDK telemetry client: /var/run/dpdk/PREFIX/dpdk_telemetry.v2 is a
SOCK_SEQPACKET socket that greets with a JSON object, then answers each command with
one JSON message {"<command>": <result>}.

    python3 telemetry.py PREFIX /tunnelfwd/stats
"""
import json
import os
import socket
import sys
import time

RUNTIME_DIR = "/var/run/dpdk"


def socket_path(prefix: str) -> str:
    return os.path.join(RUNTIME_DIR, prefix, "dpdk_telemetry.v2")


class Telemetry:
    def __init__(self, prefix: str, timeout: float = 10.0):
        """Connects, retrying until the socket exists and accepts (up to `timeout` s)."""
        path = socket_path(prefix)
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise TimeoutError("no telemetry socket at %s after %.0f s" % (path, timeout))
                time.sleep(0.1)
        self.sock = s
        greeting = json.loads(self.sock.recv(1 << 16).decode())
        self.max_output = int(greeting.get("max_output_len", 16384))

    def query(self, command: str):
        """Sends `command` and returns its result (the value under the command's name)."""
        self.sock.send(command.encode())
        reply = json.loads(self.sock.recv(max(self.max_output, 1 << 16)).decode())
        key = command.split(",", 1)[0]
        return reply.get(key)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def port_by_name(t: Telemetry, name: str) -> int:
    """The ethdev port id of the device called `name` (e.g. net_null0)."""
    for port in t.query("/ethdev/list") or []:
        info = t.query("/ethdev/info,%d" % port) or {}
        if info.get("name") == name:
            return port
    raise LookupError("no ethdev named %s" % name)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: telemetry.py PREFIX COMMAND")
    with Telemetry(sys.argv[1]) as t:
        print(json.dumps(t.query(sys.argv[2]), indent=2))
