"""Model monitoring: baselines, monitoring schedules and drift reports in Model Monitor's file formats.

- `datasets`: a baseline dataset (CSV, JSON) and an endpoint's captured records, as named columns;
- `statistics`: statistics.json, suggested constraints.json and constraint_violations.json, in the
  schemas of SageMaker Model Monitor's prebuilt container;
- `schedules`: monitoring schedules, their executions and the scheduler process that runs them;
- `report`: the drift report shown inline in a notebook.

The SDK-shaped face over these is `nbsage.model_monitor` (`DefaultModelMonitor`, ...).
"""
