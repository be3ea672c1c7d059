"""`nbsage seq2seq-prepare`: parallel text files to Seq2Seq's vocab files and RecordIO-protobuf records.

The command line of SageMaker's create_vocab_proto.py (train/validation source and target files,
vocabulary sizes and minimum counts, existing vocab files), writing the three channel folders
`preparation.prepare` writes. Imports nothing heavy until it runs, since the CLI builds every
subcommand's parser.
"""
from __future__ import annotations


def add_command(sub) -> None:
    p = sub.add_parser("seq2seq-prepare",
                       help="turn parallel text files into Seq2Seq's vocab files and RecordIO-protobuf records",
                       description="Build vocab.src.json/vocab.trg.json from the training sentences and write "
                                   "train/train.rec, validation/val.rec and vocab/ under --output (one sentence "
                                   "per line, words separated by spaces), as SageMaker's create_vocab_proto.py.")
    p.add_argument("--train-source", "-ts", required=True, metavar="FILE")
    p.add_argument("--train-target", "-tt", required=True, metavar="FILE")
    p.add_argument("--val-source", "-vs", metavar="FILE")
    p.add_argument("--val-target", "-vt", metavar="FILE")
    p.add_argument("--output", "-o", required=True, metavar="DIR")
    p.add_argument("--num-words-source", type=int, default=50000)
    p.add_argument("--num-words-target", type=int, default=50000)
    p.add_argument("--word-min-count-source", type=int, default=1)
    p.add_argument("--word-min-count-target", type=int, default=1)
    p.add_argument("--vocab-source-json", metavar="FILE", help="use this source vocabulary instead of building one")
    p.add_argument("--vocab-target-json", metavar="FILE", help="use this target vocabulary instead of building one")
    p.set_defaults(run=run)


def run(args) -> int:
    from nbsage.algorithms.seq2seq.preparation import prepare, read_parallel
    from nbsage.errors import ValidationError
    if bool(args.val_source) != bool(args.val_target):
        raise ValidationError("give both --val-source and --val-target, or neither")
    validation = read_parallel(args.val_source, args.val_target) if args.val_source else None
    prepared = prepare(read_parallel(args.train_source, args.train_target), validation, args.output,
                       num_words_source=args.num_words_source, num_words_target=args.num_words_target,
                       min_count_source=args.word_min_count_source, min_count_target=args.word_min_count_target,
                       source_vocab=args.vocab_source_json, target_vocab=args.vocab_target_json)
    print(f"{prepared.counts['train']} training pairs" +
          (f", {prepared.counts['validation']} validation pairs" if "validation" in prepared.counts else "") +
          f" ({prepared.counts['skipped']} with an empty side skipped); vocabularies of "
          f"{len(prepared.source_vocab)} and {len(prepared.target_vocab)} tokens")
    for channel, folder in prepared.channels().items():
        print(f"  {channel:<10} {folder}")
    return 0
