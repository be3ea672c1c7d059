"""Tuning analytics shaped like the SDK v2's `sagemaker.analytics.HyperparameterTuningJobAnalytics`.

`dataframe()` has one row per trial: its tuned hyperparameters (as numbers where the range is
numeric), TrainingJobName, TrainingJobStatus, FinalObjectiveValue, TrainingStartTime,
TrainingEndTime and TrainingElapsedTimeSeconds, the columns the SDK gives — plus FailureReason and
ObjectiveStatus, so a failed trial says why.
"""
from __future__ import annotations


class HyperparameterTuningJobAnalytics:
    """The trials of one tuning job as a table."""

    def __init__(self, hyperparameter_tuning_job_name: str, sagemaker_session=None):
        from nbsage.tuning_job import TuningJob
        self.name = hyperparameter_tuning_job_name
        self._job = TuningJob(hyperparameter_tuning_job_name, sagemaker_session)

    def description(self, force_refresh: bool = False) -> dict:
        return self._job.describe()

    def training_job_summaries(self, force_refresh: bool = False) -> list[dict]:
        return self._job.trials()

    def tuning_ranges(self) -> dict:
        from nbsage.tuning.config import ranges_of
        return ranges_of(self.description()["HyperParameterTuningJobConfig"]["ParameterRanges"])

    def dataframe(self, force_refresh: bool = False):
        import pandas as pd

        from nbsage.parameter import CategoricalParameter
        ranges = self.tuning_ranges()
        rows = []
        for t in self.training_job_summaries():
            row = {}
            for name, value in t["TunedHyperParameters"].items():
                row[name] = value if isinstance(ranges.get(name), CategoricalParameter) else float(value)
            metric = t.get("FinalHyperParameterTuningJobObjectiveMetric")
            start, end = pd.to_datetime(t["TrainingStartTime"]), pd.to_datetime(t["TrainingEndTime"])
            row.update({
                "TrainingJobName": t["TrainingJobName"], "TrainingJobStatus": t["TrainingJobStatus"],
                "FinalObjectiveValue": metric["Value"] if metric else None,
                "TrainingStartTime": start, "TrainingEndTime": end,
                "TrainingElapsedTimeSeconds": (end - start).total_seconds() if start is not None and end is not None
                and not pd.isna(start) and not pd.isna(end) else None,
                "ObjectiveStatus": t["ObjectiveStatus"], "FailureReason": t.get("FailureReason"),
            })
            rows.append(row)
        columns = [*ranges, "TrainingJobName", "TrainingJobStatus", "FinalObjectiveValue", "TrainingStartTime",
                   "TrainingEndTime", "TrainingElapsedTimeSeconds", "ObjectiveStatus", "FailureReason"]
        return pd.DataFrame(rows, columns=columns)

    def __repr__(self) -> str:
        return f"<nbsage.analytics.HyperparameterTuningJobAnalytics for {self.name}>"
