"""A channel's content type when the job gives none: SageMaker's default, unless every file's name
says it is CSV.

SageMaker reads a channel without ContentType as the algorithm's default (libsvm for XGBoost,
RecordIO-protobuf for Linear Learner), so `train.csv` fed to XGBoost fails with "label
'1,10.05,...' is not a number". nbsage keeps the default for anything else and reads a channel
whose files all end in .csv (or .csv.gz) as text/csv, saying so once in the job's log with how
to force the default. Pipe channels are not looked at (listing them would consume the stream).
"""
from __future__ import annotations

from nbsage import formats


def default_for(env, channel: str, default: str, algorithm: str) -> str:
    """`default`, or text/csv when every file of `channel` is named *.csv (one log line says so)."""
    ch = env.channels.get(channel)
    if ch is None or ch.input_mode == "Pipe" or default == "text/csv":
        return default
    files = env.channel_files(channel)
    if files and all(formats.content_type_of(path.name) == "text/csv" for path in files):
        print(f"channel {channel!r} has no content type and its files end in .csv: reading it as text/csv "
              f"(SageMaker's {algorithm} would assume {default}; give content_type={default!r} to read it as that)",
              flush=True)
        return "text/csv"
    return default
