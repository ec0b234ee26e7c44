"""The durable results store: one SQLite file (WAL) per sweep directory.

Tables:
  meta(key, value)            resolved spec, environment, corpus — JSON values
  runs(run_id, ...)           one row per planned run: status, spec, summary record (JSON), error text
  steps(run_id, step, ...)    per-step metrics (the training curves)
  events(run_id, t, kind, message)   OOM back-offs, retries, interruptions
  telemetry(run_id, t_s, ..., gpu, rank) GPU samples (every GPU of a multi-rank run); t_s is Unix time,
                               so runs share one timeline

Every write is one short ``BEGIN IMMEDIATE`` transaction with a generous busy timeout, so the sweep
process and its run processes can write concurrently; a process killed mid-write leaves the last committed
state. Summary metrics live as JSON so profiling can add fields without migrations; ``load_results`` flattens
them into DESIGN.md's column names.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from scalebench._util import file_error, json_safe, open_exclusive
from scalebench.errors import StoreError, StoreInputError

STORE_NAME = "scalebench.sqlite"
STATUSES = ("pending", "running", "done", "failed", "diverged")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, idx INTEGER NOT NULL, status TEXT NOT NULL, spec_hash TEXT NOT NULL,
    spec TEXT NOT NULL, record TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER, host TEXT, started_at REAL, finished_at REAL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, tokens INTEGER NOT NULL, loss REAL, lr REAL,
    step_time_s REAL, eval_loss REAL, grad_norm REAL, PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS events (run_id TEXT, t REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry (
    run_id TEXT NOT NULL, t_s REAL NOT NULL, gpu_util REAL, mem_used_bytes REAL, power_w REAL,
    sm_clock_mhz REAL, temp_c REAL, throttle_reasons INTEGER, gpu INTEGER, rank INTEGER
);
"""

# The columns load_results always has, in this order (DESIGN.md's names first).
RESULT_COLUMNS = (
    "run_id", "status", "family", "size", "budget", "shape", "unit",
    "params", "params_total", "params_nonembedding", "tokens", "flops", "flops_per_token", "flops_counted_ratio",
    "train_loss", "eval_loss", "eval_bpb", "tokens_per_s", "samples_per_s", "step_time_s", "step_time_p90_s",
    "data_wait_share", "mfu", "mfu_measured_peak", "peak_mem_bytes", "peak_reserved_bytes", "peak_rss_bytes",
    "alloc_retries", "oom_count", "energy_j", "avg_power_w", "gpu_util_mean", "bottleneck",
    "epochs", "micro_batch", "grad_accum", "precision", "compiled", "device", "world_size", "strategy",
    "steps", "wall_time_s", "error", "attempts",
)
# then: the shape's own fields (n_layer, d_model, ... for GPT), and the grid-axis values of each run


def _dumps(value: Any) -> str:
    return json.dumps(json_safe(value), sort_keys=True)


def store_path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / STORE_NAME


_RECOVER = ("restore the folder from a backup, or move the store aside (mv scalebench.sqlite "
            "scalebench.sqlite.damaged) and run the sweep again to retrain its runs")


def damaged(path: Path, why: object) -> StoreInputError:
    """The message for a store SQLite cannot read or check: what is wrong, and what to do."""
    return StoreInputError(f"{path}: not a readable scalebench store: damaged, or another kind of file ({why}); {_RECOVER}")


@contextlib.contextmanager
def damage_check(path: Path) -> Iterator[None]:
    """The one damage check every read of a store goes through: SQLite finding a damaged page (directly or
    through pandas) or a stored JSON value that does not parse becomes ``damaged`` (exit 2, with the fix)."""
    import pandas as pd

    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        raise damaged(path, exc) from None
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise damaged(path, str(exc).splitlines()[-1]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise damaged(path, f"a stored JSON value does not parse: {exc}") from None


@contextlib.contextmanager
def _reading(sweep_dir: str | Path) -> Iterator[ResultStore]:
    """A read-only store whose damage found while reading becomes one clear message."""
    store = ResultStore(sweep_dir, readonly=True)
    try:
        with damage_check(store.path):
            yield store
    finally:
        store.close()


class ResultStore:
    """A connection to one sweep's store. Cheap to open; open one per process.

    ``create``: make the folder and the tables if absent (a sweep starting). ``readonly``: never write, so a
    finished sweep in an archive or on a read-only mount can be read. ``check``: run SQLite's quick
    integrity check first (a sweep about to write), so a damaged file is reported before anything is
    recorded into it.
    """

    def __init__(self, sweep_dir: str | Path, *, create: bool = False, readonly: bool = False,
                 check: bool = False) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.path = store_path(sweep_dir)
        self.readonly = readonly
        if create and not readonly:
            try:
                self.sweep_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise file_error(exc, self.sweep_dir, "sweep folder") from None
        exists = self.path.is_file()
        if not exists and not (create and not readonly):
            raise StoreInputError(
                f"{self.sweep_dir}: no scalebench store ({STORE_NAME}) here; run `scalebench run SWEEP.toml "
                f"--out {self.sweep_dir}` first, or pass the folder a sweep wrote"
            )
        if exists and self.path.stat().st_size == 0:  # SQLite would take it for a new, empty database
            raise StoreInputError(f"{self.path}: the store is empty (0 bytes), so the sweep's records are lost "
                                  f"(a full disk or an interrupted copy does this); {_RECOVER}")
        try:
            self._conn = self._connect_readonly() if readonly else self._connect(create)
            if exists:
                self._check_schema(quick_check=check and not readonly)
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path, exc) from None

    def _connect(self, create: bool) -> sqlite3.Connection:
        if create and not self.path.exists():
            self._create_whole()
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        if create:  # an older store may lack a table added since
            with self._tx() as c:
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    c.execute(stmt)
                c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                have = {row[1] for row in c.execute("PRAGMA table_info(telemetry)")}
                for col in ("gpu", "rank"):  # stores written before per-GPU telemetry
                    if col not in have:
                        c.execute(f"ALTER TABLE telemetry ADD COLUMN {col} INTEGER")
        return conn

    def _create_whole(self) -> None:
        """A new store appears with its tables or not at all: built beside, then linked into place, so a
        reader polling the folder never meets a half-made file (which it would report as damaged)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            os.close(open_exclusive(tmp))
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file header
                conn.executescript("BEGIN;" + _SCHEMA + f"INSERT INTO meta VALUES ('schema_version', "
                                   f"'{SCHEMA_VERSION}'); COMMIT;")
            finally:
                conn.close()  # the last connection: the WAL is checkpointed into the file and removed
            try:
                os.link(tmp, self.path)  # never replaces a store another process made meanwhile
            except FileExistsError:
                pass
        except OSError as exc:
            raise file_error(exc, self.path, "results store") from None
        finally:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{tmp}{suffix}")

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            pass  # a WAL store in a folder we cannot write: SQLite cannot make its -shm file there
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise StoreInputError(
                f"{self.path}: the folder cannot be written and the store's last writes are still in {wal.name} "
                "(the sweep did not close it); copy the folder somewhere writable and read it there")
        # nothing can change a store in a folder no one can write: read it as immutable (no locks, no -shm)
        conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn

    def _check_schema(self, *, quick_check: bool) -> None:
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"meta", "runs", "steps", "events"} - tables
        if missing:
            raise StoreInputError(f"{self.path}: an SQLite file, but not a scalebench store (no table "
                                  f"{sorted(missing)[0]!r}); pass the folder a sweep wrote")
        if quick_check:
            problems = [r[0] for r in self._conn.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise damaged(self.path, "; ".join(" ".join(p.split()) for p in problems))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a full disk may have rolled it back already
                    c.execute("ROLLBACK")
                raise
            else:
                c.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "full" in str(exc) or "disk I/O" in str(exc):
                raise StoreError(f"{self.path}: cannot write the store: {exc}; free space on that disk and run the "
                                 "sweep again (what was committed is kept, finished runs are not repeated)") from None
            raise
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path, exc) from None

    # --- meta -------------------------------------------------------------------------------------
    def set_meta(self, **items: Any) -> None:
        with self._tx() as c:
            c.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, _dumps(v)) for k, v in items.items()])

    def meta(self) -> dict[str, Any]:
        with damage_check(self.path):
            return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    # --- runs -------------------------------------------------------------------------------------
    def add_runs(self, runs: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Insert planned runs (run_id, spec_hash, spec) that are not there yet, as pending."""
        now = time.time()
        with self._tx() as c:
            start = c.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM runs").fetchone()[0]
            for i, (run_id, spec_hash, spec) in enumerate(runs):
                c.execute(
                    "INSERT OR IGNORE INTO runs (run_id, idx, status, spec_hash, spec, updated_at) "
                    "VALUES (?, ?, 'pending', ?, ?, ?)",
                    (run_id, start + i, spec_hash, _dumps(spec), now),
                )

    def runs(self) -> list[dict[str, Any]]:
        with damage_check(self.path):
            cur = self._conn.execute("SELECT * FROM runs ORDER BY idx")
            names = [d[0] for d in cur.description]
            rows = []
            for row in cur:
                r = dict(zip(names, row, strict=False))
                r["spec"] = json.loads(r["spec"])
                r["record"] = json.loads(r["record"]) if r["record"] else None
                if not isinstance(r["spec"], dict) or not isinstance(r["record"], (dict, type(None))):
                    raise json.JSONDecodeError(f"run {r['run_id']}: its spec or record is not a JSON object", "", 0)
                if r["status"] not in STATUSES:
                    raise sqlite3.DatabaseError(f"run {r['run_id']} has status {r['status']!r}, not one of "
                                                f"{', '.join(STATUSES)}")
                rows.append(r)
            return rows

    def set_status(self, run_id: str, status: str, *, error: str | None = None, record: Mapping | None = None,
                   pid: int | None = None, host: str | None = None, expect: str | None = None) -> bool:
        """Move a run to ``status``; with ``expect``, only if it is currently in that status."""
        if status not in STATUSES:
            raise StoreError(f"unknown status {status!r}; one of {STATUSES}")
        now = time.time()
        sets = ["status = ?", "updated_at = ?"]
        args: list[Any] = [status, now]
        if status == "running":
            sets += ["attempts = attempts + 1", "started_at = ?", "pid = ?", "host = ?", "error = NULL"]
            args += [now, pid, host]
        if status in ("done", "failed", "diverged"):
            sets.append("finished_at = ?")
            args.append(now)
        if error is not None:
            sets.append("error = ?")
            args.append(error)
        if record is not None:
            sets.append("record = ?")
            args.append(_dumps(record))
        where = "run_id = ?" + (" AND status = ?" if expect else "")
        args += [run_id] + ([expect] if expect else [])
        with self._tx() as c:
            cur = c.execute(f"UPDATE runs SET {', '.join(sets)} WHERE {where}", args)
            return cur.rowcount == 1

    def set_pid(self, run_id: str, pid: int) -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET pid = ? WHERE run_id = ? AND status = 'running'", (pid, run_id))

    def update_spec(self, run_id: str, spec_hash: str, spec: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET spec_hash = ?, spec = ? WHERE run_id = ?", (spec_hash, _dumps(spec), run_id))

    # --- steps, events, telemetry -------------------------------------------------------------------
    def add_steps(self, run_id: str, rows: Iterable[Mapping[str, Any]]) -> None:
        cols = ("step", "tokens", "loss", "lr", "step_time_s", "eval_loss", "grad_norm")
        data = [(run_id, *(json_safe(r.get(k)) for k in cols)) for r in rows]
        if data:
            with self._tx() as c:
                c.executemany(f"INSERT OR REPLACE INTO steps (run_id, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})", data)

    def truncate_steps(self, run_id: str, after_step: int = -1) -> None:
        """Drop curve points past a checkpoint so a restarted run does not record a step twice."""
        with self._tx() as c:
            c.execute("DELETE FROM steps WHERE run_id = ? AND step > ?", (run_id, after_step))
            if after_step < 0:
                c.execute("DELETE FROM telemetry WHERE run_id = ?", (run_id,))

    def add_event(self, run_id: str | None, kind: str, message: str) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (run_id, time.time(), kind, message))

    def count_events(self, run_id: str, kind: str) -> int:
        with damage_check(self.path):
            return self._conn.execute("SELECT COUNT(*) FROM events WHERE run_id = ? AND kind = ?",
                                      (run_id, kind)).fetchone()[0]

    def add_telemetry(self, run_id: str, samples: Iterable[Mapping[str, Any]]) -> None:
        cols = ("t_s", "gpu_util", "mem_used_bytes", "power_w", "sm_clock_mhz", "temp_c", "throttle_reasons",
                "gpu", "rank")
        data = [(run_id, *(s.get(k) for k in cols)) for s in samples]
        if data:
            with self._tx() as c:
                c.executemany(f"INSERT INTO telemetry (run_id, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})", data)

    def query(self, sql: str, args: tuple = ()):
        import pandas as pd

        with damage_check(self.path):
            return pd.read_sql_query(sql, self._conn, params=args)


def load_results(sweep_dir: str | Path):
    """One row per run with DESIGN.md's column names (``RESULT_COLUMNS`` first, then any extra fields)."""
    with _reading(sweep_dir) as store:
        return _results_frame(store)


def _results_frame(store: ResultStore):
    """load_results on an open store (a Sweep reads every table through one connection)."""
    import pandas as pd

    rows, axes = [], {}
    for r in store.runs():
        spec, rec = r["spec"], r["record"] or {}
        axes.update(dict.fromkeys(spec.get("axes") or {}))
        shape = spec.get("shape", {})
        row = {
            "run_id": r["run_id"], "status": r["status"], "family": spec.get("family"),
            "size": spec.get("size"), "budget": spec.get("budget_label"), "shape": _label(spec),
            "unit": spec.get("unit", "tokens"), "params": spec.get("params"),
            "params_total": spec.get("params_total"), "params_nonembedding": _nonembedding(spec),
            "tokens": spec.get("tokens"),
            "flops": spec.get("flops"), "flops_per_token": spec.get("flops_per_token"),
            "world_size": spec.get("parallel", {}).get("ranks", 1), "error": r["error"],
            "attempts": r["attempts"],
        }
        for k, v in {**shape, **spec.get("axes", {})}.items():
            if k not in row and not isinstance(v, (dict, list)):
                row[k] = v
        for k, v in rec.items():
            if k not in ("run_id", "status") and not isinstance(v, (dict, list)):
                row[k] = v
        if isinstance(rec.get("bottleneck_detail"), dict):
            row["bottleneck_detail"] = json.dumps(rec["bottleneck_detail"])
        rows.append(row)
    df = _with_group(pd.DataFrame(rows), tuple(axes))
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = None
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    df = df[list(RESULT_COLUMNS) + extra]
    text = ("run_id", "status", "family", "size", "budget", "shape", "unit", "strategy", "bottleneck",
            "precision", "device", "error", "bottleneck_detail", "precision_note")
    numeric = [c for c in df.columns if c not in text]
    for c in numeric:
        if df[c].dtype == object and c != "compiled":
            converted = pd.to_numeric(df[c], errors="coerce")
            if converted.notna().sum() == df[c].notna().sum():  # a text axis (optimizer = "sgd") stays text
                df[c] = converted
    return df


# a [ladder] seeds axis repeats cells (pooled; the fit weighs runs by their spread: laws/noise.py); lr probes are
# no ladder cells at all (left out of the fit; laws/health.py judges them): neither makes groups of runs
NOT_GROUPS = ("seed", "probe")


def _with_group(df, axes: tuple[str, ...]):
    """Runs that differ in two or more grid axes (optimizer and momentum, say) get a ``group`` column naming
    their combination (``optimizer=sgd momentum=0.9``; an axis a run does not use is left out), so that a
    comparison is made per combination and never pools runs over an axis (``NOT_GROUPS`` are no axes here)."""
    import pandas as pd

    order = ("family", "optimizer", "momentum", "lr", "batch", "precision")  # config.GridSpec.AXES, read first
    varying = sorted((a for a in axes if a not in NOT_GROUPS and a in df and df[a].dropna().nunique() >= 2),
                     key=lambda a: (order.index(a) if a in order else len(order), a))
    if len(varying) < 2 or "group" in df:
        return df
    labels = [" ".join(f"{a}={row[a]}" for a in varying if pd.notna(row[a])) for row in df.to_dict("records")]
    return df.assign(group=labels)


def _label(spec: dict[str, Any]) -> str | None:
    """The family's label of a stored shape; None when the family is not installed here."""
    from scalebench.errors import ConfigError
    from scalebench.families import get_family

    try:
        fam = get_family(spec.get("family") or "gpt")
        return fam.label(fam.make_shape(**spec.get("shape", {})))
    except (ConfigError, TypeError):
        return None


def _nonembedding(spec: dict[str, Any]) -> int | None:
    """Kaplan's N (no embedding, no head) of a stored shape, by its family; None when it is not installed."""
    from scalebench.errors import ConfigError
    from scalebench.families import get_family

    try:
        fam = get_family(spec.get("family") or "gpt")
        return fam.nonembedding(fam.make_shape(**spec.get("shape", {})))
    except (ConfigError, TypeError):
        return None


def load_steps(sweep_dir: str | Path):
    """The training curves: one row per (run_id, step) with tokens, loss, lr, step_time_s, eval_loss."""
    with _reading(sweep_dir) as store:
        return store.query("SELECT * FROM steps ORDER BY run_id, step")


def load_events(sweep_dir: str | Path):
    with _reading(sweep_dir) as store:
        return store.query("SELECT * FROM events ORDER BY t")


def load_telemetry(sweep_dir: str | Path):
    with _reading(sweep_dir) as store:
        return store.query("SELECT * FROM telemetry ORDER BY run_id, t_s")


def load_meta(sweep_dir: str | Path) -> dict[str, Any]:
    """The resolved spec (``spec``), environment (``env``) and corpus (``corpus``) of a sweep."""
    with _reading(sweep_dir) as store:
        return store.meta()


def load_all(sweep_dir: str | Path) -> dict[str, Any]:
    """Every table of a sweep through one read-only connection: ``results``, ``steps``, ``telemetry``,
    ``events`` (DataFrames, as the ``load_*`` functions give them), ``meta`` (a dict), ``axes`` (the grid
    axes' names in first-seen order) and ``specs`` (each run's stored spec, by run id)."""
    with _reading(sweep_dir) as store:
        axes: dict[str, None] = {}
        specs = {}
        for r in store.runs():
            specs[r["run_id"]] = r["spec"] or {}
            axes.update(dict.fromkeys(specs[r["run_id"]].get("axes") or {}))
        return {"results": _results_frame(store), "axes": tuple(axes), "specs": specs,
                "steps": store.query("SELECT * FROM steps ORDER BY run_id, step"),
                "telemetry": store.query("SELECT * FROM telemetry ORDER BY run_id, t_s"),
                "events": store.query("SELECT * FROM events ORDER BY t"),
                "meta": store.meta()}


class SweepTables:
    """A sweep folder's tables, read through one connection on first use and kept (``results``, ``steps``,
    ``telemetry``, ``events``, ``meta``, ``axes``). ``scalebench.Sweep`` adds the verbs; the laws read a
    sweep through this, so they need nothing above the store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not store_path(self.path).is_file():
            raise StoreInputError(f"{self.path}: no scalebench store ({STORE_NAME}) here; run `scalebench run "
                                  f"SWEEP.toml --out {self.path}` first, or pass the folder a sweep wrote")
        self._cache: dict[str, Any] | None = None

    def __fspath__(self) -> str:  # goes wherever a sweep folder's path does
        return str(self.path)

    def _tables(self) -> dict[str, Any]:
        if self._cache is None:
            self._cache = load_all(self.path)
        return self._cache

    def reload(self) -> SweepTables:
        """Forget the cached tables (the next access reads the store again); returns self."""
        self._cache = None
        return self

    @property
    def results(self):
        """One row per run (as :func:`load_results`)."""
        return self._tables()["results"]

    @property
    def steps(self):
        return self._tables()["steps"]

    @property
    def telemetry(self):
        return self._tables()["telemetry"]

    @property
    def events(self):
        return self._tables()["events"]

    @property
    def meta(self) -> dict[str, Any]:
        return self._tables()["meta"]

    @property
    def axes(self) -> tuple[str, ...]:
        """The grid axes' names (optimizer, lr, ...), in first-seen order."""
        return tuple(self._tables().get("axes", ()))

    @property
    def specs(self) -> dict[str, dict[str, Any]]:
        """Each run's stored spec (family, shape, train settings, ...), by run id."""
        return dict(self._tables().get("specs") or {})

    @property
    def spec(self) -> dict[str, Any]:
        """The resolved sweep spec saved with the sweep (empty for a store without one)."""
        return dict(self.meta.get("spec") or {})

    @property
    def name(self) -> str:
        return str(self.meta.get("sweep_name") or self.spec.get("name") or self.path.name)

    @property
    def done(self):
        return self.results[self.results["status"] == "done"]
