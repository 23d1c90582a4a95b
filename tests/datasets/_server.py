"""A localhost HTTP server for download tests: serves byte strings from a dict, counts requests, and can
announce a longer Content-Length than it sends (a connection cut short)."""

import http.server
import threading


class FileServer:
    def __init__(self, files=None):
        self.files = dict(files or {})  # name -> bytes
        self.short = set()              # names whose transfer is cut short
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                cut = name in server.short
                self.send_header("Content-Length", str(len(body) + (1000 if cut else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
