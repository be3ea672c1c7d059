"""`%%sm_tune`: a hyperparameter tuning job from a notebook cell; `%sm_tuning_jobs` lists them.

    %%sm_tune xgboost --objective validation:auc --max-jobs 20 --max-parallel 2 --train train --validation valid
    num_round: 50
    objective: binary:logistic
    max_depth: int(3, 10)
    eta: float(0.01, 0.3, log)
    booster: choice(gbtree, dart)

It builds an Estimator and a HyperparameterTuner and calls `fit()` (the grammar is
nbsage.tuning_arguments'); the live trials table comes from the tuner's wait. Returns the tuner (also
kept as `_sm_tuner`), so `tuner = %sm_tune ...` works. Settings: `%config TuningMagics.wait = False`.
"""
from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from traitlets import Bool, Unicode
from traitlets.config import Configurable

from nbsage import arguments, tuning_arguments
from nbsage.arguments import arg
from nbsage.notebook.parsing import one_line, parse, takes


class TuningJobList(list):
    """Tuning jobs (TuningJob handles, newest first), shown as a table."""

    def __init__(self, jobs):
        from nbsage.tuning_job import tuning_row
        super().__init__(jobs)
        self.rows = [tuning_row(job.describe()) for job in self]

    def __repr__(self) -> str:
        from nbsage.notebook.display import _text_table
        from nbsage.tuning_job import TUNING_LIST_HEADER
        return _text_table(TUNING_LIST_HEADER, self.rows) if self.rows else "no tuning jobs"

    def _repr_html_(self) -> str:
        from nbsage.notebook.display import _html_table
        from nbsage.tuning_job import TUNING_LIST_HEADER
        return _html_table(TUNING_LIST_HEADER, self.rows) if self.rows else "<i>no tuning jobs</i>"


def tuning_jobs(limit: int = 50) -> TuningJobList:
    """The tuning jobs of the default session, as a table (`%sm_jobs --tuning`, `%sm_tuning_jobs`)."""
    from nbsage.session import Session
    from nbsage.tuning_job import list_tuning_jobs
    return TuningJobList(list_tuning_jobs(Session.default(), limit=limit))


@magics_class
class TuningMagics(Magics, Configurable):
    """Tuning jobs from cells. Configure with `%config TuningMagics.<setting> = value`."""

    default_backend = Unicode("local", config=True, help="Where the trials run: the place (backend) name.")
    instance_type = Unicode("local", config=True, help="Instance type recorded on the trials.")
    wait = Bool(True, config=True, help="Follow %%sm_tune jobs until they end (like fit(wait=True)).")

    def __init__(self, shell):
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.shell.configurables[:] = [c for c in self.shell.configurables if type(c).__name__ != "TuningMagics"]
        self.shell.configurables.append(self)

    @line_cell_magic
    @takes(arguments.TRAIN, tuning_arguments.TUNE, arguments.place_arguments())
    @one_line()
    def sm_tune(self, line, cell=None):
        """Start a tuning job; the cell body holds fixed values and ranges as YAML (`eta: float(0.01, 0.3, log)`)."""
        from nbsage.estimator import Estimator
        from nbsage.session import Session
        from nbsage.tuner import HyperparameterTuner
        args = parse(self.sm_tune, line)
        options, inputs, tuner_options = tuning_arguments.tuning_call(
            args, body=cell, namespace=self.shell.user_ns, instance_type=self.instance_type,
            backend=self.default_backend, place_defaults=self._place_defaults())
        estimator = Estimator(sagemaker_session=Session.default(), **options)
        tuner = HyperparameterTuner(estimator, **tuner_options)
        tuner.fit(inputs, job_name=args.name, wait=False)
        self.shell.user_ns["_sm_tuner"] = tuner
        if self.wait and not args.no_wait:
            try:
                tuner.latest_tuning_job.wait(logs=not args.quiet)
            except KeyboardInterrupt:
                print(f"Stopped following {tuner.latest_tuning_job.name}; it is still running "
                      "(_sm_tuner.stop_tuning_job() stops it).")
        return tuner

    def _place_defaults(self) -> dict:
        """The kernel place's gateway and kernel from %config SageMakerMagics, as %%sm_train uses them."""
        for configurable in self.shell.configurables:
            if type(configurable).__name__ == "SageMakerMagics":
                return configurable._place_defaults()
        return {}

    @line_magic
    @takes([arg("--limit", type=int, default=50, help="show at most this many tuning jobs (newest first)")])
    @one_line()
    def sm_tuning_jobs(self, line):
        """List tuning jobs: name, status, strategy, objective, trials, best training job and value."""
        args = parse(self.sm_tuning_jobs, line)
        if args.limit < 1:
            raise UsageError("--limit must be at least 1")
        return tuning_jobs(args.limit)


def register(ipython) -> TuningMagics:
    """Add %%sm_tune and %sm_tuning_jobs to an IPython shell."""
    magics = TuningMagics(ipython)
    ipython.register_magics(magics)
    return magics
