"""The control socket never holds up the control core, which also answers ARP and
resolves next hops: stalled, idle, flooding and malformed clients are served or closed
without delaying either, and each bad request gets a one-line error."""

import json
import os
import socket
import threading
import time

from tfsys import (
    REMOTE_IP, REMOTE_MAC, RUNTIME_ROOT, UPLINK_IP, VNI, VX_IP, arp_request, tunnelctl, tunnelctl_json, wait_until,
)

MAX_CONNECTIONS = 64          # ControlServer.maxConnections
REQUEST_TIMEOUT_S = 5         # ControlServer.requestTimeoutMs
REPLY_TIMEOUT_S = 5           # ControlServer.replyTimeoutMs


def control_path(fwd) -> str:
    return str(RUNTIME_ROOT / fwd.prefix / "tunnelfwd.sock")


def connect(fwd, timeout: float = 5) -> socket.socket:
    """A connection to the control socket; waits while its backlog is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.connect(control_path(fwd))
            return s
        except BlockingIOError:
            if time.monotonic() >= deadline:
                s.close()
                raise
            time.sleep(0.001)


def read_reply(s: socket.socket, timeout: float = 5) -> tuple[list[dict], bool]:
    """Everything the forwarder sends until it closes the connection (or `timeout`): the
    JSON lines, and whether it closed. Closing with bytes of ours unread resets the
    connection, after what it sent has been read."""
    s.settimeout(timeout)
    data = b""
    closed = False
    try:
        while chunk := s.recv(1 << 16):
            data += chunk
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    return [json.loads(line) for line in data.split(b"\n") if line.strip()], closed


def ask(fwd, payload: bytes, half_close: bool = False) -> list[dict]:
    """Sends `payload` on a new connection and returns the reply lines; the forwarder
    must close the connection after them."""
    s = connect(fwd)
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end: the reply is waiting to be read
        if half_close:
            s.shutdown(socket.SHUT_WR)
        lines, closed = read_reply(s)
        assert closed, f"the forwarder kept the connection open after {lines}"
        return lines
    finally:
        s.close()


def arp_round_trips(topo, count: int = 20, interval: float = 0.05) -> list[float]:
    """Round-trip times (ms) of `count` ARP requests for the uplink address sent from the
    remote namespace every `interval` seconds (iputils arping takes whole seconds)."""
    s = topo.raw_socket(topo.rm)
    s.settimeout(1)
    request = arp_request(REMOTE_MAC, REMOTE_IP, UPLINK_IP)
    rtts = []
    try:
        for _ in range(count):
            sent = time.monotonic()
            s.send(request)
            while time.monotonic() - sent < 1:
                try:
                    frame = s.recv(2048)
                except socket.timeout:
                    break
                # An ARP reply (EtherType 0x0806, operation 2) from the uplink address.
                if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" and frame[28:32] == socket.inet_aton(UPLINK_IP):
                    rtts.append((time.monotonic() - sent) * 1000)
                    break
            time.sleep(max(0.0, interval - (time.monotonic() - sent)))
    finally:
        s.close()
    assert len(rtts) == count, f"{len(rtts)} of {count} ARP requests answered: {rtts}"
    return rtts


class GarbageStreamer:
    """A client that sends random bytes without a newline as fast as it can, reconnecting
    whenever the forwarder closes on it, and keeps the error lines it gets."""

    def __init__(self, fwd):
        self.fwd = fwd
        self.replies: list[dict] = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        garbage = os.urandom(1 << 16).replace(b"\n", b"x")
        while not self._stop.is_set():
            try:
                s = connect(self.fwd)
            except OSError:
                time.sleep(0.01)
                continue
            self.connections += 1
            try:
                while not self._stop.is_set():
                    s.sendall(garbage)
            except OSError:
                lines, _ = read_reply(s, timeout=1)
                self.replies += lines
            finally:
                s.close()

    def stop(self):
        self._stop.set()
        self._thread.join(10)


def test_hostile_clients_do_not_delay_arp_resolution_or_commands(make_topology, start_forwarder, config_for):
    """While 200 connections sit idle, one holds half a command and one streams garbage:
    every ARP request for the uplink address is answered within milliseconds, a
    tunnelctl change returns promptly and is in force, a flushed next hop is resolved
    again and carries a datagram within 100 ms. The forwarder keeps at most 64
    connections (newcomers displace the ones waiting longest for a request), closes the
    rest once their time is up, and counts them."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo, neighbors=[]))
    wait_until(lambda: fwd.resolved(REMOTE_IP), timeout=5, what="t1's next hop resolved")
    quiet = arp_round_trips(topo)
    before = fwd.stats()

    idle = []
    for _ in range(200):
        idle.append(connect(fwd))
    half = connect(fwd)
    half.sendall(b'{"tunnelAdd":{"_0":{"name":"half","type":"vxlan",')
    streamer = GarbageStreamer(fwd).start()
    try:
        stats = wait_until(lambda: (s := fwd.stats())["control_rejected"] - before["control_rejected"] >= 200 - MAX_CONNECTIONS
                           and s, timeout=5, what="the connections over the limit closed")
        assert stats["control_connections_now"] <= MAX_CONNECTIONS, stats["control_connections_now"]
        wait_until(lambda: streamer.replies, timeout=5, what="an error line for the garbage streamer")

        loaded = arp_round_trips(topo)
        assert max(loaded) < 50, f"ARP round trips (ms) with the clients {loaded}, without them {quiet}"

        start = time.monotonic()
        p = tunnelctl(fwd.prefix, "forwarding", "add", "--segment", str(VNI), "--mac", "02:00:00:00:42:77",
                      "--tunnel", "t1")
        took = time.monotonic() - start
        assert p.stdout.strip() == f"segment {VNI}: 02:00:00:00:42:77 -> tunnel t1", p.stdout
        assert took < 2, f"tunnelctl took {took:.2f} s"

        # A cold next hop: flushed, then a datagram through it as soon as the command returns.
        rx = topo.udp_socket(topo.rm, bind=(VX_IP, 9100))
        tx = topo.udp_socket(topo.vms[0])
        try:
            rx.settimeout(3)
            flushed = fwd.stats()
            tunnelctl(fwd.prefix, "neighbor", "flush")
            sent = time.monotonic()
            tx.sendto(b"after the flush", (VX_IP, 9100))
            assert rx.recv(100) == b"after the flush"
            delay = time.monotonic() - sent
        finally:
            rx.close()
            tx.close()
        assert delay < 0.1, f"the datagram after the flush took {delay * 1000:.0f} ms"
        resolved = fwd.wait_stats(flushed, lambda d: d["arp_requests"] >= 1 and d["arp_replies"] >= 1,
                                  what="the next hop resolved again by ARP")
        assert resolved["arp_requests"] >= 1, resolved
    finally:
        streamer.stop()

    # The garbage never had a newline: each of its connections ended at the size bound.
    assert streamer.replies and all(r == {"ok": False, "message": "request longer than 1048576 bytes"}
                                    for r in streamer.replies), streamer.replies[:3]

    # Every idle and half-written connection is closed by the forwarder: displaced by a
    # newer one, or after the request timeout.
    for s in idle + [half]:
        lines, closed = read_reply(s, timeout=REQUEST_TIMEOUT_S + 5)
        assert closed and len(lines) == 1 and not lines[0]["ok"], lines
        assert "no complete request" in lines[0]["message"], lines
        s.close()
    after = fwd.wait_stats(before, lambda d: d["control_connections_now"] == 0, timeout=5,
                           what="no control connection left open")
    assert after["control_rejected"] >= 200 + 1 + streamer.connections - 1, (after["control_rejected"], streamer.connections)
    # The two tunnelctl commands (and the streamer's last connection, if its close ended a request).
    assert after["control_requests"] in (2, 3), after["control_requests"]
    rows = tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"]
    assert "02:00:00:00:42:77" in [r["mac"] for r in rows], rows


def test_bad_requests_get_one_line_errors(make_topology, start_forwarder, config_for):
    """Garbage, an empty line, an 8 MiB line, deeply nested JSON: each gets one JSON
    error line and the connection is closed; a request ended by closing the sending
    side instead of a newline is served; the forwarder goes on serving."""
    topo = make_topology()
    fwd = start_forwarder(topo, config_for(topo))
    before = fwd.stats()

    def error(payload: bytes) -> str:
        lines = ask(fwd, payload)
        assert len(lines) == 1 and lines[0]["ok"] is False, lines
        return lines[0]["message"]

    assert error(os.urandom(4096).replace(b"\n", b"x") + b"\n").startswith("malformed request:")
    assert error(b"\n").startswith("malformed request:")
    assert error(b'{"noSuchCommand":{}}\n').startswith("malformed request:")
    assert error(b"[" * 500_000 + b"\n").startswith("malformed request:")
    assert error(b'{"tunnelAdd":{"_0":' * 50_000 + b"\n").startswith("malformed request:")
    assert error(b"x" * (8 << 20) + b"\n") == "request longer than 1048576 bytes"
    # Exactly at the bound is still a request (a malformed one).
    assert error(b" " * (1 << 20) + b"\n").startswith("malformed request:")

    lines = ask(fwd, b'{"neighborShow":{"all":false}}', half_close=True)
    assert len(lines) == 1 and lines[0]["ok"] and lines[0]["neighbors"][0]["address"] == REMOTE_IP, lines

    delta = fwd.settle(before)
    assert delta["control_rejected"] == 1 and delta["control_requests"] == 7, delta
    p = tunnelctl(fwd.prefix, "neighbor", "show")
    assert REMOTE_IP in p.stdout, p.stdout


def test_a_client_that_does_not_read_its_reply_is_dropped(make_topology, start_forwarder, config_for):
    """With 5 000 forwarding entries, `forwarding show` is a reply of about half a
    megabyte: tunnelctl reads it whole (written as the socket takes it), a client that
    never reads it stalls nothing and is dropped after the reply timeout."""
    topo = make_topology()
    macs = [f"02:00:00:01:{i >> 8:02x}:{i & 0xff:02x}" for i in range(5000)]
    fwd = start_forwarder(topo, config_for(topo, forwarding=[{"segment": VNI, "mac": m, "tunnel": "t1"} for m in macs]))
    before = fwd.stats()
    stalled = connect(fwd)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b'{"forwardingShow":{}}\n')

    rows = tunnelctl_json(fwd.prefix, "forwarding", "show")["forwarding"]
    assert len(rows) == 5000, len(rows)
    arp_round_trips(topo, count=10)
    assert fwd.stats()["control_connections_now"] == 1

    fwd.wait_stats(before, lambda d: d["control_rejected"] == 1, timeout=REPLY_TIMEOUT_S + 5,
                   what="the stalled client dropped")
    received = b""
    stalled.settimeout(5)
    try:
        while chunk := stalled.recv(1 << 16):
            received += chunk
    except ConnectionResetError:
        pass
    stalled.close()
    assert 0 < len(received) and not received.endswith(b"\n"), f"the reply was cut short: {len(received)} bytes"
    assert fwd.stats()["control_connections_now"] == 0
