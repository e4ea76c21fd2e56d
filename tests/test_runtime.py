"""Caches and temporary files of a workflow job stay inside the project, never in the home."""

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from alliance.runtime import isolate_caches
job_dir = isolate_caches(sys.argv[1], "fit growth/patient linear")
import pytensor
from pytensor.link.numba.cache import NUMBA_CACHE_PATH
import tempfile
print(json.dumps({
    "job_dir": str(job_dir),
    "base_compiledir": str(pytensor.config.base_compiledir),
    "compiledir": str(pytensor.config.compiledir),
    "numba_cache": str(NUMBA_CACHE_PATH),
    "tempdir": tempfile.gettempdir(),
}))
"""


def probe(project: Path, home: Path) -> dict:
    settings = ("PYTENSOR_FLAGS", "TMPDIR", "MPLCONFIGDIR", "NUMBA_CACHE_DIR")
    env = {key: value for key, value in os.environ.items() if key not in settings}
    env["HOME"] = str(home)
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(project)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_compile_caches_and_temporary_files_are_inside_the_project(tmp_path):
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    paths = probe(project, home)
    cache = (project / ".cache").resolve()
    assert paths["job_dir"] == str(cache / "pytensor" / "fit_growth_patient_linear")
    assert paths["compiledir"] == paths["job_dir"]
    assert paths["base_compiledir"] == str(cache / "pytensor")
    # the numba kernels are shared by all jobs of the project
    assert paths["numba_cache"] == str(cache / "pytensor" / "numba")
    assert paths["tempdir"] == str(cache / "tmp")
    assert not any(home.iterdir()), "nothing may be written to the user's home"


def test_the_test_session_compiles_inside_the_project():
    import pytensor

    from alliance.settings import PROJECT_DIR

    cache = (PROJECT_DIR / ".cache").resolve()
    assert Path(pytensor.config.base_compiledir).resolve().is_relative_to(cache)
    assert Path(pytensor.config.compiledir).resolve().is_relative_to(cache)


def test_a_job_logs_the_cpu_time_and_peak_memory_it_used(tmp_path):
    """At exit a job's log states its CPU time, which includes busy work in threads, and its
    peak memory: at least the 300 MB it filled, and not the size of the (test) process that
    started it."""
    script = (
        "import threading\n"
        "import numpy as np\n"
        "from alliance.runtime import job_logger\n"
        "log = job_logger(r'%s', 'probe')\n"
        "filled = np.ones(300 * 2**20 // 8)\n"
        "def spin():\n"
        "    total = 0\n"
        "    for i in range(3_000_000):\n"
        "        total += i\n"
        "threads = [threading.Thread(target=spin) for _ in range(2)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
    ) % (tmp_path / "job.log")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    last = (tmp_path / "job.log").read_text().strip().splitlines()[-1]
    seconds = float(last.split("done: ")[1].split(" s of CPU time")[0])
    assert 0.1 < seconds < 60
    megabytes = float(last.split("s of CPU time, ")[1].split(" MB peak memory")[0])
    assert 300 < megabytes < 1000
