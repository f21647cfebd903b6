"""Fault injection on real ``python -m codec.cli`` processes: SIGKILL, torn writes, a full disk, a read-only folder.

* A SIGKILL mid-encode leaves a checkpoint and no output; ``--resume`` then finishes with exactly the bytes of
  an uninterrupted run (same machine, same options: the encoder is deterministic, see test_pipeline).
* A kill while a checkpoint is being written (the new one half on disk) leaves the previous checkpoint byte for
  byte; a kill while the output is being written leaves no output file, and after a full disk the last
  checkpoint resumes to the same bytes.
* A full disk (ENOSPC on write) and a read-only output folder (EROFS) end with one line and exit code 2, and
  leave no partial file behind.

The in-process faults are injected by a small driver that patches ``os.fsync`` / ``os.fdopen`` / ``os.open``
for one file and then runs the real CLI entry point.
"""
from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from codec import fileio
from codec.checkpoint import Checkpoint, checkpoint_path

ROOT = Path(__file__).resolve().parents[2]
ENCODE = ["--preset", "xxs", "--epochs", "12", "--seed", "3", "-q"]  # 12 + 2 prune + 1 QAT epochs, ~1 s
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 180

# Naming the output (not the hidden temporary file) in OSError messages, and failing before training when the
# output folder is not writable, need the codec.fileio changes proposed in the reliability report.
HAS_FILEIO_FIX = hasattr(fileio, "check_writable")
NEEDS_FILEIO_FIX = pytest.mark.xfail(not HAS_FILEIO_FIX, strict=True,
                                     reason="needs codec.fileio.check_writable + final-path errors (see report)")

DRIVER = textwrap.dedent("""
    import errno, hashlib, os, signal, sys
    mode, target, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    base, folder = os.path.basename(target), os.path.dirname(os.path.abspath(target))
    seen = [0]

    def is_temp_of(path):
        # atomic writes go to '.NAME.<random>.tmp' beside NAME; the random part has no dot
        name = os.path.basename(path)
        middle = name[len(base) + 2:-4]
        return name.startswith("." + base + ".") and name.endswith(".tmp") and middle and "." not in middle

    def fd_path(fd):
        return os.readlink(f"/proc/self/fd/{fd}")

    if mode == "kill-in-write":  # the new file is half on disk when the process dies
        real_fsync = os.fsync
        def fsync(fd):
            if is_temp_of(fd_path(fd)):
                seen[0] += 1
                if seen[0] == nth:
                    if os.path.exists(target):
                        with open(target, "rb") as f:
                            digest = hashlib.sha256(f.read()).hexdigest()
                        with open(target + ".before", "w") as f:
                            f.write(digest)
                    os.ftruncate(fd, os.fstat(fd).st_size // 2)
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_fsync(fd)
        os.fsync = fsync
    elif mode == "disk-full":  # the nth write of the file fails half-way with ENOSPC
        real_fdopen = os.fdopen
        class Full:
            def __init__(self, f):
                self._f = f
            def __getattr__(self, name):
                return getattr(self._f, name)
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return self._f.__exit__(*exc)
            def write(self, data):
                self._f.write(bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        def fdopen(fd, *args, **kwargs):
            f = real_fdopen(fd, *args, **kwargs)
            if is_temp_of(fd_path(fd)):
                seen[0] += 1
                if seen[0] == nth:
                    return Full(f)
            return f
        os.fdopen = fdopen
    elif mode == "read-only":  # nothing can be created in the target's folder
        real_open = os.open
        def open_(path, flags, *args, **kwargs):
            writing = flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR)
            if writing and os.path.dirname(os.path.abspath(path)) == folder:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
            return real_open(path, flags, *args, **kwargs)
        os.open = open_
    sys.argv = ["hinerv"] + sys.argv[4:]
    from codec.cli import main
    main()
""")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codec.cli", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=TIMEOUT)


def _one_line_error(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert run.stderr.startswith("hinerv: error: ") and run.stderr.count("\n") == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    return run.stderr.strip()


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# name -> (fault, the file it hits, which write of that file, command). Each runs in its own folder.
FAULTS = {
    "kill-checkpoint": ("kill-in-write", "out.bin.ckpt", 2, "encode"),  # the 2nd save: end of pruning
    "kill-output": ("kill-in-write", "out.bin", 1, "encode"),
    "full-checkpoint": ("disk-full", "out.bin.ckpt", 1, "encode"),
    "full-output": ("disk-full", "out.bin", 1, "encode"),
    "read-only-encode": ("read-only", "out.bin", 0, "encode"),
    "read-only-decode": ("read-only", "out.y4m", 0, "decode"),
}


class Faults:
    """The fault runs, started together in the background (they are independent; the machine has 2 cores)."""

    def __init__(self, clip: Path, base: Path, bitstream: bytes) -> None:
        self.folders: dict[str, Path] = {}
        self.procs: dict[str, tuple[subprocess.Popen, float]] = {}
        self.results: dict[str, subprocess.CompletedProcess] = {}
        for name, (mode, target, nth, command) in FAULTS.items():
            folder = base / name
            folder.mkdir()
            self.folders[name] = folder
            if command == "encode":
                args = ["encode", str(clip), str(folder / "out.bin"), *ENCODE]
            else:
                (base / "in.bin").write_bytes(bitstream)
                args = ["decode", str(base / "in.bin"), str(folder / "out.y4m"), "-q"]
            proc = subprocess.Popen([sys.executable, "-c", DRIVER, mode, str(folder / target), str(nth), *args],
                                    cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.procs[name] = (proc, time.monotonic())

    def result(self, name: str) -> tuple[subprocess.CompletedProcess, Path, float]:
        proc, started = self.procs[name]
        if name not in self.results:
            out, err = proc.communicate(timeout=TIMEOUT)
            self.results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return self.results[name], self.folders[name], time.monotonic() - started

    def close(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module")
def faults(tiny_clip, tmp_path_factory):
    import fuzz_targets

    runs = Faults(tiny_clip, tmp_path_factory.mktemp("faults"), fuzz_targets.bitstream_seeds()[0])
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def reference(faults, tiny_clip, tmp_path_factory) -> bytes:
    """An uninterrupted encode through the CLI: what every interrupted one must end up writing."""
    out = tmp_path_factory.mktemp("reference") / "ref.bin"
    run = _cli("encode", str(tiny_clip), str(out), *ENCODE)
    assert run.returncode == 0, run.stderr
    assert not checkpoint_path(out).exists()
    return out.read_bytes()


def test_sigkill_mid_encode_then_resume_gives_identical_bytes(faults, tiny_clip, reference, tmp_path):
    out = tmp_path / "out.bin"
    ckpt = checkpoint_path(out)
    proc = subprocess.Popen([sys.executable, "-m", "codec.cli", "encode", str(tiny_clip), str(out), *ENCODE],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)  # in the pruning fine-tune, just after the end-of-training checkpoint
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, "the encode finished before it could be killed"
    assert not out.exists(), "the kill came after the output was written; the test needs a longer encode"
    saved = Checkpoint.load(ckpt)
    assert saved.stage in (0, 1)  # training (or pruning) done, the rest not
    run = _cli("encode", str(tiny_clip), str(out), *ENCODE, "--resume")
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == reference
    assert not ckpt.exists()
    assert _leftovers(tmp_path, {"out.bin"}) == []


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(faults):
    run, folder, _ = faults.result("kill-checkpoint")
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    ckpt = folder / "out.bin.ckpt"
    before = (folder / "out.bin.ckpt.before").read_text()
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == before  # the previous checkpoint, byte for byte
    saved = Checkpoint.load(ckpt)
    assert saved.stage in (0, 1)  # end of training (or, on a slow machine, a timed save before it)
    assert not (folder / "out.bin").exists()
    # The torn new checkpoint is only ever the hidden temporary file that was never renamed.
    torn = _leftovers(folder, {"out.bin.ckpt", "out.bin.ckpt.before"})
    assert len(torn) == 1 and torn[0].startswith(".out.bin.ckpt.") and torn[0].endswith(".tmp")


def test_kill_while_writing_the_output_leaves_none(faults):
    run, folder, _ = faults.result("kill-output")
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert not (folder / "out.bin").exists()
    assert Checkpoint.load(folder / "out.bin.ckpt").stage == 2  # everything trained: resuming writes the file
    torn = _leftovers(folder, {"out.bin.ckpt"})
    assert len(torn) == 1 and torn[0].startswith(".out.bin.") and torn[0].endswith(".tmp")


@pytest.mark.parametrize("which", ["checkpoint", "output"])
def test_disk_full_is_one_line_and_leaves_no_partial_file(faults, which):
    run, folder, _ = faults.result(f"full-{which}")
    message = _one_line_error(run)
    assert "No space left on device" in message
    assert not (folder / "out.bin").exists()
    if which == "checkpoint":
        assert _leftovers(folder, set()) == []
    else:  # the last checkpoint stays
        assert _leftovers(folder, set()) == ["out.bin.ckpt"]
        assert Checkpoint.load(folder / "out.bin.ckpt").stage == 2
    if HAS_FILEIO_FIX:  # the file the user asked for, not the hidden temporary one
        target = folder / ("out.bin.ckpt" if which == "checkpoint" else "out.bin")
        assert message.endswith(f"No space left on device: {target}")


def test_after_a_full_disk_resume_writes_the_same_bytes(faults, tiny_clip, reference):
    run, folder, _ = faults.result("full-output")
    assert run.returncode == 2
    out = folder / "out.bin"
    run = _cli("encode", str(tiny_clip), str(out), *ENCODE, "--resume")  # space freed: --resume
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == reference
    assert _leftovers(folder, set()) == ["out.bin"]


@NEEDS_FILEIO_FIX
def test_errors_name_the_file_not_its_temporary(tmp_path):
    """An OSError in an atomic write (disk full, read-only) names the destination, never '.NAME.xyz.tmp'."""
    target = tmp_path / "out.bin"
    with pytest.raises(OSError) as info:
        with fileio.atomic_open(target):
            raise OSError(28, "No space left on device")
    assert info.value.filename == str(target) and not list(tmp_path.iterdir())
    if os.geteuid() != 0:  # root writes through permission bits
        tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(OSError) as info:
                fileio.check_writable(target)
            assert info.value.filename == str(target) and "cannot create a file in" in info.value.strerror
        finally:
            tmp_path.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_read_only_output_folder_is_one_line_and_writes_nothing(faults, command):
    run, folder, seconds = faults.result(f"read-only-{command}")
    message = _one_line_error(run)
    assert "Read-only file system" in message and str(folder) in message
    assert _leftovers(folder, set()) == []
    if HAS_FILEIO_FIX and command == "encode":  # refused before loading the video and training
        assert "cannot create a file in" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits (the test above simulates)")
def test_read_only_folder_by_permissions(tiny_clip, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        message = _one_line_error(_cli("encode", str(tiny_clip), str(folder / "out.bin"), *ENCODE))
        assert "Permission denied" in message and str(folder) in message
        assert _leftovers(folder, set()) == []
    finally:
        folder.chmod(stat.S_IRWXU)
