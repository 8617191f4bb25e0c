#!/usr/bin/env python3
"""Drive a real headless chromium over the DevTools protocol (a pipe, stdlib only)
against breakerd's status page, for tests/test_incidents.c.

usage: browse.py URL OUT_DIR SCREENSHOT -- TRIP_COMMAND...

Loads URL, waits until the page shows global ACTIVE with nothing held, marks
the loaded document (a window property: a reload drops it), runs
TRIP_COMMAND, then polls (deadline 60 s, never a latency assertion) until
the page shows the trip. Passes only if the document showing it is a new one
(the page reloaded itself: nobody navigated). Writes OUT_DIR/before.html and
OUT_DIR/after.html (the DOMs) and a phone-sized screenshot. Exit 0 on
success; 1 with the reason on stderr.
"""
import base64
import json
import os
import subprocess
import sys
import time


class Browser:
    def __init__(self, profile):
        self.r_ours, self.w_theirs = os.pipe()  # their fd 4 -> us
        self.r_theirs, self.w_ours = os.pipe()  # us -> their fd 3
        args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--user-data-dir=" + profile,
                "--remote-debugging-pipe", "about:blank"]

        def fds():
            os.dup2(self.r_theirs, 3)
            os.dup2(self.w_theirs, 4)
        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=fds,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(self.r_theirs)
        os.close(self.w_theirs)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def call(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.w_ours, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = os.read(self.r_ours, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for(b, expr, what, deadline_s=60):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if b.eval(expr):
                return
        except RuntimeError:
            pass  # between two documents
        time.sleep(0.1)
    raise RuntimeError("gave up waiting for " + what)


def main():
    url, out, shot = sys.argv[1], sys.argv[2], sys.argv[3]
    trip = sys.argv[sys.argv.index("--") + 1:]
    b = Browser(os.path.join(out, "chromium"))
    try:
        target = b.call("Target.createTarget", {"url": url}, session=False)
        att = b.call("Target.attachToTarget",
                     {"targetId": target["targetId"], "flatten": True}, session=False)
        b.session = att["sessionId"]
        b.call("Runtime.enable")
        wait_for(b, "document.getElementById('global-mode') && "
                 "document.getElementById('global-mode').innerText.includes('ACTIVE')"
                 " && document.body.innerText.includes('0 of 2 strategies held')",
                 "the page before the trip")
        with open(os.path.join(out, "before.html"), "w") as f:
            f.write(b.eval("document.documentElement.outerHTML"))
        b.eval("window.__loadedBeforeTrip = true")
        subprocess.run(trip, check=True, stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        wait_for(b, "document.body && document.body.innerText.includes("
                 "'1 of 2 strategies held')", "the page to show the trip")
        took = time.monotonic() - t0
        if b.eval("window.__loadedBeforeTrip === true"):
            raise RuntimeError("the document showing the trip is the old one?")
        with open(os.path.join(out, "after.html"), "w") as f:
            f.write(b.eval("document.documentElement.outerHTML"))
        print("browse: the page reloaded itself and showed the trip %.2f s after it"
              % took, file=sys.stderr)
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": True})
        b.call("Page.enable")
        png = b.call("Page.captureScreenshot", {"format": "png"})
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png["data"]))
    except Exception as e:  # noqa: BLE001 - the test reports any failure
        print("browse: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
