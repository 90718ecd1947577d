"""sampler.py - a sampling profiler of every kubesim thread, for benchmarks.

With KUBESIM_PROFILE=FILE kubesim samples the stack of each of its threads
every 5 ms (sys._current_frames) and, when it stops, writes FILE: per
function, the share of samples where it is on top of a running thread
("self") and anywhere in its stack ("total"), highest total first. A thread
whose CPU clock did not move since the last sample was waiting (select, a
lock, a socket, sleep) and is counted apart, so the shares are of the work
done, like a CPU profile. A deterministic
profiler (cProfile) sees one thread only and slows the simulator several
times; sampling costs about 2 %.
"""
import collections
import sys
import threading
import time



def _cpu(tid):
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(tid))
    except (OSError, OverflowError):
        return None


class Sampler(threading.Thread):
    def __init__(self, path, interval=0.005):
        super().__init__(name="kubesim-sampler", daemon=True)
        self.path, self.interval = path, interval
        self.self_n = collections.Counter()
        self.total_n = collections.Counter()
        self.samples = self.idle = 0
        self.halt = threading.Event()

    def run(self):
        me = threading.get_ident()
        last = {}
        while not self.halt.wait(self.interval):
            for tid, frame in sys._current_frames().items():
                if tid == me:
                    continue
                now = _cpu(tid)
                before, last[tid] = last.get(tid), now
                if now is None or before is None or now == before:
                    self.idle += 1
                    continue
                self.samples += 1
                top = "%s:%s" % (frame.f_code.co_filename.rsplit("/", 1)[-1], frame.f_code.co_name)
                self.self_n[top] += 1
                seen = set()
                while frame is not None:
                    k = "%s:%s" % (frame.f_code.co_filename.rsplit("/", 1)[-1], frame.f_code.co_name)
                    if k not in seen:
                        seen.add(k)
                        self.total_n[k] += 1
                    frame = frame.f_back

    def stop(self):
        self.halt.set()
        self.join(timeout=2)
        n = max(self.samples, 1)
        with open(self.path, "w") as f:
            f.write("# %d working samples, %d idle, every %.0f ms at %s\n"
                    % (self.samples, self.idle, self.interval * 1000, time.strftime("%H:%M:%S")))
            f.write("# total%%  self%%  function\n")
            for k, v in self.total_n.most_common(80):
                f.write("%6.1f %6.1f  %s\n" % (100 * v / n, 100 * self.self_n[k] / n, k))
