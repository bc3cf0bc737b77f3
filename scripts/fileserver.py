#!/usr/bin/env python3
"""fileserver.py: the small HTTP file service of hapair's demo and end-to-end
tests, run by the MASTER on the mounted replicated file system.

    fileserver.py run   --root DIR [--bind ADDRESS] [--port PORT] [--pid-file FILE]
    fileserver.py start --root DIR [--bind ADDRESS] [--port PORT] [--state-dir DIR]
    fileserver.py stop  [--state-dir DIR]

`run` serves in the foreground. `start` and `stop` are the service commands
the promote and demote hooks run, idempotent as `systemctl start` / `stop`
are: `start` starts a detached server (pid file and log in --state-dir,
by default $HAPAIR_RUN_DIR/fileserver, the run directory the hooks get)
unless one runs, and returns once it listens; `stop` sends it SIGTERM and
returns once it exited (SIGKILL after 10 s). Both succeed when there is
nothing to do.

GET /NAME     the file NAME of DIR (200), or 404.
GET /         the names of the files, one a line.
PUT /NAME     stores the request body as NAME and answers 201 only once the
              data is durable: it is written to a temporary file, fsync'd,
              renamed over NAME, and the directory is fsync'd. A client that
              got 201 may count on the file surviving a crash of this host.
HEAD /NAME    as GET, without the body.

NAME is one path component of letters, digits, '.', '-' and '_' (not
starting with '.'); anything else is refused with 400. Only the Python
standard library is used (Debian package python3). On SIGTERM it stops
accepting, finishes nothing more and exits 0.
"""

import argparse
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time

NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}$")
# The most one upload may carry: the lab's volumes are small.
MAX_UPLOAD = 64 << 20
# How long `start` waits for the server to listen, `stop` for it to exit.
SERVICE_TIMEOUT = 10.0


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hapair-fileserver/1"
    # Each request on its own connection: a client retrying after a
    # failover never reuses a connection to the old server.
    protocol_version = "HTTP/1.0"

    def _name(self):
        name = self.path.split("?", 1)[0].lstrip("/")
        if not NAME.match(name):
            self._reply(400, f"bad file name {name!r}: use letters, digits, '.', '-', '_'\n")
            return None
        return name

    def _reply(self, code, text, head_only=False):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _get(self, head_only):
        if self.path in ("/", ""):
            names = sorted(n for n in os.listdir(self.server.root) if NAME.match(n))
            self._reply(200, "".join(f"{n}\n" for n in names), head_only)
            return
        name = self._name()
        if name is None:
            return
        try:
            with open(os.path.join(self.server.root, name), "rb") as file:
                data = file.read()
        except FileNotFoundError:
            self._reply(404, f"no file {name}\n", head_only)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def do_GET(self):
        self._get(head_only=False)

    def do_HEAD(self):
        self._get(head_only=True)

    def do_PUT(self):
        name = self._name()
        if name is None:
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, "PUT needs a Content-Length\n")
            return
        if not 0 <= length <= MAX_UPLOAD:
            self._reply(413, f"uploads are 0 to {MAX_UPLOAD} bytes, not {length}\n")
            return
        data = self.rfile.read(length)
        if len(data) != length:
            self._reply(400, f"the body ended after {len(data)} of {length} bytes\n")
            return
        root = self.server.root
        temporary = os.path.join(root, f".{name}.{threading.get_ident()}.part")
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.rename(temporary, os.path.join(root, name))
            directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as error:
            self._reply(500, f"cannot store {name}: {error}\n")
            return
        self._reply(201, f"stored {name}: {length} bytes, durable\n")

    def log_message(self, format, *args):
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def serve(options):
    if not os.path.isdir(options.root):
        sys.exit(f"fileserver: --root {options.root}: not a directory (is the file system mounted?)")
    try:
        server = http.server.ThreadingHTTPServer((options.bind, options.port), Handler)
    except OSError as error:
        sys.exit(f"fileserver: cannot listen on {options.bind}:{options.port}: {error}")
    server.daemon_threads = True
    server.root = options.root
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if options.pid_file:
        with open(options.pid_file + ".new", "w") as file:
            file.write(f"{os.getpid()}\n")
        os.rename(options.pid_file + ".new", options.pid_file)
    print(f"fileserver: serving {options.root} on {options.bind}:{options.port}", flush=True)
    server.serve_forever()
    server.server_close()
    if options.pid_file:
        try:
            os.unlink(options.pid_file)
        except FileNotFoundError:
            pass


def running_pid(pid_file):
    """The pid in pid_file if that process still runs, else None."""
    try:
        with open(pid_file) as file:
            pid = int(file.read().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def wait(condition, what):
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"fileserver: {what} within {SERVICE_TIMEOUT:.0f} s")
        time.sleep(0.02)


def start(options):
    pid_file = os.path.join(options.state_dir, "fileserver.pid")
    log_file = os.path.join(options.state_dir, "fileserver.log")
    pid = running_pid(pid_file)
    if pid is not None:
        print(f"fileserver: already running (pid {pid})")
        return
    os.makedirs(options.state_dir, exist_ok=True)
    try:
        os.unlink(pid_file)
    except FileNotFoundError:
        pass
    with open(log_file, "ab") as log:
        # A session of its own: the server outlives the hook that starts it.
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "run", "--root", options.root,
             "--bind", options.bind, "--port", str(options.port), "--pid-file", pid_file],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    def listening():
        if child.poll() is not None:
            with open(log_file) as log:
                last = (log.read().strip().splitlines() or ["(no output)"])[-1]
            sys.exit(f"fileserver: the server exited with {child.returncode}: {last}")
        return running_pid(pid_file) is not None

    wait(listening, "the server did not listen")
    print(f"fileserver: started (pid {child.pid}), serving {options.root} on {options.bind}:{options.port}")


def stop(options):
    pid_file = os.path.join(options.state_dir, "fileserver.pid")
    pid = running_pid(pid_file)
    if pid is None:
        print("fileserver: not running")
        return
    os.kill(pid, signal.SIGTERM)

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        wait(gone, f"pid {pid} did not exit on SIGTERM")
    except SystemExit:
        os.kill(pid, signal.SIGKILL)
        print(f"fileserver: pid {pid} ignored SIGTERM; killed it")
    print(f"fileserver: stopped (pid {pid})")


def add_state_dir(command):
    run_dir = os.environ.get("HAPAIR_RUN_DIR")
    command.add_argument(
        "--state-dir",
        default=os.path.join(run_dir, "fileserver") if run_dir else None,
        help="holds the pid file and log (default: $HAPAIR_RUN_DIR/fileserver)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "start"):
        command = commands.add_parser(name)
        command.add_argument("--root", required=True, help="the directory served")
        command.add_argument("--bind", default="0.0.0.0", help="the address to listen on")
        command.add_argument("--port", type=int, default=80, help="the TCP port (default 80)")
        if name == "run":
            command.add_argument("--pid-file", help="written once the server listens")
        else:
            add_state_dir(command)
    add_state_dir(commands.add_parser("stop"))
    options = parser.parse_args()
    if options.command != "run" and options.state_dir is None:
        parser.error("--state-dir is needed (or HAPAIR_RUN_DIR in the environment)")
    {"run": serve, "start": start, "stop": stop}[options.command](options)


if __name__ == "__main__":
    main()
