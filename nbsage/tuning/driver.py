"""The process that runs one tuning job: `python -m nbsage.tuning.driver NAME`.

It is detached from the kernel that started it (a tuning job outlives the notebook), and holds an
exclusive lock on the job's folder so that only one driver runs a job. Each round it: reads the
running trials' new metric values from the store and reports them to the study (a pruned trial is
stopped, and ends Stopped as on SageMaker); tells the study the result of each trial that ended
(its objective's last value, or why it failed); asks the study for new trials while fewer than
MaxParallelTrainingJobs run, and submits each as an ordinary training job on the estimator's place,
with the tuning job recorded as its parent.

Everything it needs is in the store and the study (`study.journal`), so a driver that crashed is simply
started again (`ensure_driver`, called whenever the job is looked at): it picks up the trials still
running, and the ones it had asked for but not started are told failed and not counted.

The driver submits trials through the API (nbsage.job.submit), as a notebook would: it is the API
run in its own process, not a place.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from nbsage.store.metadata import TERMINAL, pid_alive

POLL_SECONDS = 0.1
FAILED_ATTEMPTS = 5  # "No training job succeeded after 5 attempts"
DRIVER_LOG = "driver.log"
MODULE = "nbsage.tuning.driver"


def job_dir(session, name: str) -> Path:
    return session.jobs_dir / name


def study_path(session, name: str) -> Path:
    return job_dir(session, name) / "study.journal"


# ---- launching and resuming ---------------------------------------------------------------------
def start_driver(session, name: str) -> None:
    """Start the detached driver of tuning job `name` (it exits at once if another one runs it)."""
    from nbsage.runtime.layout import PRIVATE_UMASK, private_dir, private_file
    folder = private_dir(job_dir(session, name))
    env = dict(os.environ, PYTHONUNBUFFERED="1", **session.stores.launch_environment())
    with open(private_file(folder / DRIVER_LOG), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", MODULE, name], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True, close_fds=True,
                                umask=PRIVATE_UMASK)
    session.store.update_job(name, runtime_pid=proc.pid)
    threading.Thread(target=proc.wait, daemon=True).start()


def driving(pid: int | None, name: str) -> bool:
    """Whether `pid` is alive and is this tuning job's driver (pids are recycled)."""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if argv == [b""]:
        return True  # still in execve
    return MODULE.encode() in argv and name.encode() in argv


def ensure_driver(session, job: dict) -> None:
    """Start the driver again where a tuning job is in progress and its driver is gone (it resumes)."""
    if job["status"] in ("InProgress", "Stopping") and not session.store.read_only \
            and not driving(job.get("runtime_pid"), job["name"]):
        start_driver(session, job["name"])


# ---- the driver ---------------------------------------------------------------------------------
class Driver:
    """One tuning job's loop over its study."""

    def __init__(self, session, name: str):
        from nbsage.store.requests import TuningRequest
        from nbsage.tuning import config, search
        self.session, self.store, self.name = session, session.store, name
        self.request = TuningRequest.from_dict(json.loads(self.store.get_job(name)["request"]))
        cfg = self.request.config
        self.strategy = cfg["Strategy"]
        self.objective = cfg["HyperParameterTuningJobObjective"]["MetricName"]
        self.maximize = cfg["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
        limits = cfg["ResourceLimits"]
        self.max_jobs = int(limits["MaxNumberOfTrainingJobs"])
        self.max_parallel = int(limits["MaxParallelTrainingJobs"])
        self.max_runtime = limits.get("MaxRuntimeInSeconds")
        self.criteria = cfg.get("TuningJobCompletionCriteria") or {}
        self.ranges = config.ranges_of(cfg["ParameterRanges"])
        hyperband = None
        if self.strategy == "Hyperband":
            hyperband = config.hyperband_resources(cfg.get("StrategyConfig"),
                                                   self.request.definition.get("StaticHyperParameters") or {})
        self.study = search.open_study(study_path(session, name), name, cfg["HyperParameterTuningJobObjective"]["Type"],
                                       self.strategy, self.ranges, cfg.get("RandomSeed"),
                                       cfg.get("TrainingJobEarlyStoppingType", "Off"), hyperband)
        import optuna
        self.prunes = not isinstance(self.study.pruner, optuna.pruners.NopPruner)  # per-round values needed
        self.running: dict[str, object] = {}  # trial job name -> optuna Trial
        self.metric_ids: dict[str, int] = {}  # trial job name -> last metric row read
        self.steps: dict[str, set] = {}  # trial job name -> the steps reported to the study
        self.pruned: set[str] = set()
        self.stop_launching = ""  # why no more trials start ("" while they may)

    # ---- resuming ----
    def resume(self) -> None:
        """Adopt the study's running trials (their jobs go on without the driver); warm-start a new study."""
        import optuna
        from nbsage.errors import JobError
        trials = self.study.get_trials(deepcopy=False)
        if not trials:
            self._warm_start()
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            job_name = t.user_attrs.get("TrainingJobName")
            try:
                job = self.store.get_job(job_name) if job_name else None
            except JobError:
                job_name = None
            if job_name is None:  # asked for, never started: not a trial
                self.study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                continue
            if job["status"] == "InProgress" and job.get("supervisor_pid") is None:
                self._launch_recorded(job)
            self.running[job_name] = optuna.trial.Trial(self.study, t._trial_id)
            self.steps[job_name] = set(t.intermediate_values)
            self.pruned.update([job_name] if t.user_attrs.get("nbsage:Pruned") else [])

    def _launch_recorded(self, job: dict) -> None:
        """Start a trial that was recorded and not launched (the driver died in between), as submit would."""
        from nbsage import backends
        from nbsage.backends.lifecycle import JobLifecycle
        try:
            backends.get(job["backend"], self.session, **self.request.place_options).start(job["name"])
        except Exception as e:  # the trial ends Failed with the reason, never stays InProgress
            JobLifecycle(self.store, job["name"], job["kind"]).could_not_start(e)

    def _warm_start(self) -> None:
        warm = self.request.data.get("WarmStartConfig")
        if not warm:
            return
        from nbsage.tuning import search
        parents = [search.load_study(study_path(self.session, p["HyperParameterTuningJobName"]),
                                     p["HyperParameterTuningJobName"]) for p in warm["ParentHyperParameterTuningJobs"]]
        search.warm_start(self.study, warm["WarmStartType"], parents)

    # ---- one round ----
    def run(self) -> int:
        from nbsage.backends.lifecycle import JobLifecycle
        self.resume()
        started = self.store.get_job(self.name)["creation_time"]
        self.launched_count = self.launched()
        self.check_completion(started)
        while True:
            record = self.store.get_job(self.name)
            if record["status"] in TERMINAL:
                return 0
            stopping = bool(record["stop_requested"])
            ended = self.follow_trials()
            if stopping:
                for job_name in self.running:
                    self._stop_trial(job_name)
                if not self.running:
                    JobLifecycle(self.store, self.name, "tuning").stopped("Tuning job stopped")
                    return 0
            else:
                if ended:  # the rules read the trials' results: only worth reading again when one ended
                    self.check_completion(started)
                elif self.max_runtime and time.time() - started > float(self.max_runtime):
                    self.stop_launching = "MaxRuntimeInSeconds reached"
                if not self.stop_launching:
                    self.launch_trials()
                if not self.running and (self.stop_launching or self.launched_count >= self.max_jobs):
                    return self.finish()
            time.sleep(POLL_SECONDS)

    def launched(self) -> int:
        return len(self.store.children(self.name))

    def follow_trials(self) -> int:
        """Report the running trials' new values; tell the ended ones. Returns how many ended."""
        import optuna

        from nbsage import backends
        from nbsage.errors import JobError
        ended = 0
        for job_name, trial in list(self.running.items()):
            try:
                job = backends.refreshed_record(self.session, job_name)
            except JobError:  # its place refused it before it was recorded: a failed attempt
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
                del self.running[job_name]
                ended += 1
                continue
            # each reported value is a journal write with an fsync (50 rounds: ~0.25 s a trial): only
            # where a pruner reads them, and for a stopped trial, which the study records as pruned
            if self.prunes or job["status"] == "Stopped":
                self._report(job_name, trial)
            if job["status"] in TERMINAL:
                self._tell(job_name, trial, job)
                del self.running[job_name]
                ended += 1
        return ended

    def _report(self, job_name: str, trial) -> None:
        """New per-round values of the objective -> the study; stop the trial when the pruner says so."""
        rows = self.store.get_metrics(job_name, self.metric_ids.get(job_name, 0))
        if not rows:
            return
        self.metric_ids[job_name] = rows[-1]["id"]
        reported = False
        seen = self.steps.setdefault(job_name, set())
        for row in rows:
            if row["name"] == self.objective and row["step"] is not None and row["step"] not in seen:
                trial.report(row["value"], row["step"])
                seen.add(row["step"])
                reported = True
        if reported and job_name not in self.pruned and trial.should_prune():
            self.pruned.add(job_name)
            trial.set_user_attr("nbsage:Pruned", True)
            self._stop_trial(job_name)

    def _stop_trial(self, job_name: str) -> None:
        from nbsage.training_job import TrainingJob
        job = self.store.get_job(job_name)
        if job["status"] == "InProgress":
            TrainingJob(job_name, self.session).stop()

    def _tell(self, job_name: str, trial, job: dict) -> None:
        import optuna
        State = optuna.trial.TrialState
        finals = {m["MetricName"]: m["Value"] for m in self.store.final_metrics(job_name)}
        value = finals.get(self.objective)
        if job["status"] == "Completed" and value is not None:
            self.study.tell(trial, value, skip_if_finished=True)
        elif job["status"] == "Stopped" and self.steps.get(job_name):
            self.study.tell(trial, state=State.PRUNED, skip_if_finished=True)
        else:
            if job["status"] == "Completed":
                emitted = ", ".join(sorted(finals)) or "no metrics"
                trial.set_user_attr("FailureReason", f"the objective metric {self.objective!r} was not emitted "
                                                     f"by the training job (it emitted {emitted})")
            self.study.tell(trial, state=State.FAIL, skip_if_finished=True)

    # ---- deciding ----
    def check_completion(self, started: float) -> None:
        """Whether to start more trials: SageMaker's failure rule, completion criteria, MaxRuntimeInSeconds."""
        from nbsage.tuning.records import trial_summaries
        trials = trial_summaries(self.session, self.name)
        succeeded = [t for t in trials if t["ObjectiveStatus"] == "Succeeded"]
        failed = [t for t in trials if t["TrainingJobStatus"] == "Failed" or t["ObjectiveStatus"] == "Failed"]
        if not succeeded and len(failed) >= min(FAILED_ATTEMPTS, self.max_jobs):
            self.stop_launching = "failed"
            return
        if self.max_runtime and time.time() - started > float(self.max_runtime):
            self.stop_launching = "MaxRuntimeInSeconds reached"
            return
        values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in succeeded]
        target = self.criteria.get("TargetObjectiveMetricValue")
        if target is not None and values:
            best = max(values) if self.maximize else min(values)
            if (best >= target) if self.maximize else (best <= target):
                self.stop_launching = f"the objective reached TargetObjectiveMetricValue {target}"
                return
        patience = (self.criteria.get("BestObjectiveNotImproving") or {}).get("MaxNumberOfTrainingJobsNotImproving")
        if patience and len(values) > patience:
            best_before = max(values[:-patience]) if self.maximize else min(values[:-patience])
            recent = values[-patience:]
            improved = any((v > best_before) if self.maximize else (v < best_before) for v in recent)
            if not improved:
                self.stop_launching = f"the best objective did not improve over {patience} training jobs"

    def launch_trials(self) -> None:
        while len(self.running) < self.max_parallel and self.launched_count < self.max_jobs:
            self.launched_count += 1
            self.launch_one(self.launched_count)

    def launch_one(self, index: int) -> None:
        from nbsage.errors import NBSageError
        from nbsage.job import submit
        from nbsage.store.requests import TrainingRequest
        from nbsage.tuning import search
        trial = self.study.ask()
        values = search.suggest(trial, self.ranges)
        job_name = f"{self.name[:32]}-{index:03d}-{uuid.uuid4().hex[:8]}"
        trial.set_user_attr("TrainingJobName", job_name)
        definition = json.loads(json.dumps(self.request.definition))
        hps = dict(definition.pop("StaticHyperParameters", {}) or {})
        if "sagemaker_program" in hps:  # script mode: the job's own name, as the SDK sets it
            hps["sagemaker_job_name"] = json.dumps(job_name)
        hps.update(values)
        request = {"TrainingJobName": job_name, **definition, "HyperParameters": hps,
                   "nbsage:TunedHyperParameters": values}
        self.running[job_name] = trial
        try:
            submit(self.session, TrainingRequest.from_dict(request), self.request.place,
                   self.request.place_options, parent=self.name)
        except NBSageError:
            pass  # recorded and Failed by submit (the reason is on the trial); told at the next round

    def finish(self) -> int:
        from nbsage.backends.lifecycle import JobLifecycle
        from nbsage.tuning.records import trial_summaries
        trials = trial_summaries(self.session, self.name)
        life = JobLifecycle(self.store, self.name, "tuning")
        if any(t["ObjectiveStatus"] == "Succeeded" for t in trials):
            self.store.set_status(self.name, "Completed", "Completed", self.stop_launching or "Tuning job completed")
            return 0
        failures = [t for t in trials if t.get("FailureReason")]
        last = f" Last failure: {failures[-1]['TrainingJobName']}: {failures[-1]['FailureReason']}" if failures else ""
        attempts = len(trials)
        return life.failed(f"ClientError: No training job succeeded after {attempts} attempt"
                           f"{'s' if attempts != 1 else ''}. Please take a look at the training job failures "
                           f"to get more details.{last}")


def main(argv: list[str] | None = None) -> int:
    from nbsage.session import Session
    from nbsage.store import Stores
    name = (argv or sys.argv[1:])[0]
    stores = Stores.from_environment()
    session = Session(stores.home, stores.artifact_root)
    folder = job_dir(session, name)
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / "driver.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another driver runs this job: the record names it, not this process
        lock.seek(0)
        holder = lock.read().strip()
        if holder.isdigit():
            session.store.update_job(name, runtime_pid=int(holder))
        return 0
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    session.store.update_job(name, runtime_pid=os.getpid())
    try:
        return Driver(session, name).run()
    except Exception as e:  # the job ends Failed with the reason, never stays InProgress
        import traceback
        traceback.print_exc()
        from nbsage.backends.lifecycle import JobLifecycle
        return JobLifecycle(session.store, name, "tuning").failed(f"InternalServerError: the tuning job's driver "
                                                                   f"failed: {type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main())
