"""A fault-injecting TCP proxy in front of the real Redis, driven by the test that starts it.

    with FaultProxy() as proxy:              # 127.0.0.1:<port> → 127.0.0.1:6379
        settings.FLOWS_REDIS_STATE_STORE_PORT = proxy.port
        proxy.lose_reply("SET")              # the next SET reaches Redis; its reply is lost
        ...
        assert proxy.fired.wait(5)           # the fault happened

Faults (each armed one fires once, then the proxy passes traffic through again;
`fired` is set when a fault has hit traffic):
- `lose_reply(command, then=...)`: forward the next matching command to Redis, swallow
  its reply, then "close" the client connection (FIN), "reset" it (RST) or "hold" it
  (open, silent: the client waits for its socket timeout).
- `reset_before(command)`: reset the client connection instead of forwarding the next
  matching command (Redis never sees it).
- `hold_replies()` / `release()`: keep every reply of every connection (a stalled Redis)
  until released; `reset_all()`: reset every open connection.

It parses RESP just enough to cut both streams at command and reply boundaries and to
pair each reply with the command it answers, so a fault hits exactly one command even
inside a pipeline. One thread runs a selector loop over all sockets; `stop()` joins it
and closes every socket. The listening port is free-chosen by the OS, or taken from the
range in the environment variable FLOWR_TEST_PORTS (e.g. "17000-17099").
"""
import os
import selectors
import socket
import struct
import threading
from collections import deque
from contextlib import contextmanager

REDIS_ADDRESS = ("127.0.0.1", 6379)
_SUBCOMMANDS = {b"CLIENT", b"ACL", b"CONFIG", b"COMMAND", b"OBJECT", b"MEMORY"}


# -- RESP framing ------------------------------------------------------------------------

def command_frame(buf):
    """(args, end) of the first complete command in `buf`, or None when incomplete."""
    if not buf:
        return None
    if buf[:1] != b"*":  # an inline command: one line
        end = buf.find(b"\n")
        return None if end < 0 else (bytes(buf[:end]).split(), end + 1)
    line_end = buf.find(b"\r\n")
    if line_end < 0:
        return None
    pos, args = line_end + 2, []
    for _ in range(int(buf[1:line_end])):
        head_end = buf.find(b"\r\n", pos)
        if head_end < 0:
            return None
        start = head_end + 2
        end = start + int(buf[pos + 1:head_end]) + 2
        if len(buf) < end:
            return None
        if len(args) < 3:  # the name, a subcommand or key: all a fault matches on
            args.append(bytes(buf[start:end - 2]))
        pos = end
    return args, pos


def reply_end(buf, pos=0):
    """End offset of the complete RESP2/RESP3 reply starting at `pos`, or None."""
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return None
    kind, head, after = buf[pos:pos + 1], buf[pos + 1:line_end], line_end + 2
    if kind in (b"$", b"!", b"="):  # bulk string, blob error, verbatim string
        size = int(head)
        end = after + size + 2
        return after if size < 0 else (end if len(buf) >= end else None)
    if kind in (b"*", b"~", b">", b"%", b"|"):  # aggregates
        count = int(head) * (2 if kind in (b"%", b"|") else 1)
        for _ in range(max(count, 0)):
            after = reply_end(buf, after)
            if after is None:
                return None
        return after
    return after  # one-line types: + - : _ , # (


def command_name(args):
    """'SET', 'CLIENT SETINFO' ...: the name a fault or a test matches on."""
    if not args:
        return ""
    name = args[0].upper()
    if name in _SUBCOMMANDS and len(args) > 1:
        name += b" " + args[1].upper()
    return name.decode("ascii", "replace")


# -- the proxy ---------------------------------------------------------------------------

class _Link:
    """One client connection and its own connection to Redis."""

    def __init__(self, client, server):
        self.client, self.server = client, server
        self.from_client, self.from_server = bytearray(), bytearray()
        self.pending = deque()  # per forwarded command: None, or the fault for its reply
        self.held = bytearray()  # replies kept while the proxy holds replies
        self.silent = False  # a "hold" fault fired: nothing more reaches the client


class FaultProxy:
    """A TCP proxy to Redis whose faults the test arms; see the module docstring."""

    def __init__(self, target=REDIS_ADDRESS, host="127.0.0.1"):
        self.target, self.host = target, host
        self.port = None
        self.fired = threading.Event()  # set when an armed fault has happened
        self.commands = []  # names of the commands forwarded, in order
        self.connections = 0  # client connections accepted
        self._lock = threading.Lock()
        self._armed = None  # (kind, command, key_prefix, then)
        self._holding = False
        self._actions = deque()  # callables run by the loop thread
        self._links = {}  # socket -> _Link
        self._running = False
        self._thread = None

    # -- life cycle ----------------------------------------------------------------
    def start(self):
        """Listen and serve in a background thread; returns self."""
        self._listener = _listen(self.host)
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, close every connection and the listener (idempotent)."""
        if not self._running:
            return
        self._running = False
        self._wake()
        self._thread.join(timeout=5)
        for link in list(self._links.values()):
            self._close(link)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- faults --------------------------------------------------------------------
    def lose_reply(self, command="SET", key_prefix=None, then="close"):
        """Forward the next matching command, swallow its reply, then close/reset/hold."""
        if then not in ("close", "reset", "hold"):
            raise ValueError(f"then must be 'close', 'reset' or 'hold', not {then!r}")
        self._arm(("lose", command.upper(), key_prefix, then))

    def reset_before(self, command="SET", key_prefix=None):
        """Reset the client connection instead of forwarding the next matching command."""
        self._arm(("reset", command.upper(), key_prefix, "reset"))

    def hold_replies(self):
        """Keep every reply (a stalled Redis) until release() or stop()."""
        with self._lock:
            self.fired.clear()
            self._holding = True

    def release(self):
        """Deliver the replies kept by hold_replies() and pass traffic through again."""
        with self._lock:
            self._holding = False
        self._run_in_loop(self._flush_held)

    def reset_all(self):
        """Reset (RST) every open client connection."""
        self.fired.clear()

        def reset():
            for link in set(self._links.values()):
                self._close(link, reset=True)
                self.fired.set()
        self._run_in_loop(reset)

    def disarm(self):
        """Forget an armed fault that has not fired."""
        with self._lock:
            self._armed = None

    def _arm(self, fault):
        with self._lock:
            self.fired.clear()
            self._armed = fault

    def _take_fault(self, args):
        """The armed fault if `args` match it (then disarmed), else None."""
        with self._lock:
            fault = self._armed
            names = {command_name(args), command_name(args[:1])}
            if fault is None or fault[1] not in names:
                return None
            key = args[1].decode("utf-8", "replace") if len(args) > 1 else ""
            if fault[2] is not None and not key.startswith(fault[2]):
                return None
            self._armed = None
            return fault

    # -- the loop (all socket I/O happens in the proxy's thread) ----------------------
    def _run_in_loop(self, action, timeout=5):
        done = threading.Event()
        self._actions.append(lambda: (action(), done.set()))
        self._wake()
        if not done.wait(timeout):
            raise RuntimeError("the fault proxy's loop did not answer")

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _loop(self):
        while self._running:
            for key, _ in self._selector.select(timeout=0.5):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._wake_r.recv(4096)
                else:
                    self._read(*key.data)
            while self._actions:
                self._actions.popleft()()

    def _accept(self):
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(self.target, timeout=2)
        except OSError:
            _reset(client)
            return
        for sock in (client, server):
            sock.settimeout(2)  # sendall never blocks the loop for long
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, server)
        self._links[client] = self._links[server] = link
        self._selector.register(client, selectors.EVENT_READ, (link, "client"))
        self._selector.register(server, selectors.EVENT_READ, (link, "server"))
        self.connections += 1

    def _read(self, link, side):
        sock = link.client if side == "client" else link.server
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close(link)
            return
        try:
            (self._from_client if side == "client" else self._from_server)(link, data)
        except OSError:
            self._close(link)

    def _from_client(self, link, data):
        link.from_client += data
        while link.client in self._links:
            frame = command_frame(link.from_client)
            if frame is None:
                return
            args, end = frame
            raw = bytes(link.from_client[:end])
            del link.from_client[:end]
            fault = self._take_fault(args)
            if fault is not None and fault[0] == "reset":
                self._close(link, reset=True)
                self.fired.set()
                return
            self.commands.append(command_name(args))
            link.pending.append(fault)
            link.server.sendall(raw)

    def _from_server(self, link, data):
        link.from_server += data
        while link.client in self._links:
            end = reply_end(link.from_server)
            if end is None:
                return
            raw = bytes(link.from_server[:end])
            del link.from_server[:end]
            fault = link.pending.popleft() if link.pending else None
            if fault is not None:
                self._fire(link, fault[3])
            elif link.silent:
                continue
            elif self._holding:
                link.held += raw
                self.fired.set()
            else:
                link.client.sendall(raw)

    def _fire(self, link, then):
        if then == "hold":
            link.silent = True
        else:
            self._close(link, reset=then == "reset")
        self.fired.set()

    def _flush_held(self):
        for link in set(self._links.values()):
            if link.held and not link.silent:
                try:
                    link.client.sendall(bytes(link.held))
                except OSError:
                    self._close(link)
            link.held.clear()

    def _close(self, link, reset=False):
        for sock in (link.client, link.server):
            if self._links.pop(sock, None) is None:
                continue
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            if reset and sock is link.client:
                _reset(sock)
            else:
                sock.close()


def _reset(sock):
    """Close with SO_LINGER 0: the peer gets a TCP RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@contextmanager
def unreachable(host="127.0.0.1"):
    """(host, port) of a listener that never completes a connection: its accept queue is
    full, so a client's connect times out as with a host that drops packets."""
    listener = _listen(host, backlog=0)
    filler = socket.create_connection(listener.getsockname(), timeout=2)
    try:
        yield listener.getsockname()
    finally:
        filler.close()
        listener.close()


def _listen(host, backlog=64):
    """A listening socket on a port of FLOWR_TEST_PORTS ("low-high"), else OS-chosen."""
    ports = os.environ.get("FLOWR_TEST_PORTS", "")
    low, _, high = ports.partition("-")
    candidates = range(int(low), int(high or low) + 1) if low else [0]
    for port in candidates:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            continue
        sock.listen(backlog)
        return sock
    raise RuntimeError(f"no free port in FLOWR_TEST_PORTS={ports}")
