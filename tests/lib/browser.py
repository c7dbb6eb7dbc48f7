"""Debian's Chromium, headless, as the tests' browser: it runs a page's
scripts and returns the DOM they left.

    chromium(url, tmpdir) -> (DOM text, stderr)   script_errors(stderr) -> [lines]
"""
import shutil
import subprocess


def chromium(url, tmpdir):
    """(DOM text, stderr) of the page after Chromium ran its scripts."""
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed (deploy/install-deps.sh installs it)"
    p = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmpdir}/chromium",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=4000", "--dump-dom", url],
        capture_output=True, timeout=120)
    assert p.returncode == 0, (p.returncode, p.stderr.decode()[-2000:])
    return p.stdout.decode(), p.stderr.decode()


def script_errors(stderr):
    return [line for line in stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
