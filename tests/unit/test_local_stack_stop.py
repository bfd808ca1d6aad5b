"""`make run`'s stack stops on SIGTERM whichever of its threads the kernel hands the signal to."""
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The main thread serves (waits on the API process, here a long sleep) while another thread
# takes the SIGTERM, as the kernel may choose when any thread of the process can take it.
SCRIPT = """
import signal, subprocess, sys, threading, time
from infra.local_stack import LocalStack, _raise_keyboard_interrupt

signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
api = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(40)"])
stack = LocalStack(base_url="", moto_endpoint="", client_key=None, worker_token=None,
                   operator_key=None, environment={}, stack_outputs={}, app=None, _process=api)

def signal_this_thread():
    time.sleep(0.5)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

threading.Thread(target=signal_this_thread, daemon=True).start()
try:
    stack.serve_forever()
except KeyboardInterrupt:
    print("stopped", flush=True)
finally:
    api.kill()
"""


def test_a_sigterm_taken_by_another_thread_still_stops_the_stack():
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=25)
    assert run.stdout.strip() == "stopped", run.stderr
    assert time.monotonic() - started < 15  # not when the API process ends by itself (40 s)
