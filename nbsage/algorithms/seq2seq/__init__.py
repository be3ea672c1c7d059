"""Seq2Seq: SageMaker's sequence-to-sequence translation algorithm (Sockeye 1.x), in PyTorch.

`declaration` says what the algorithm accepts; `vocab` and `records` read and check the vocab files
and the RecordIO-protobuf `source`/`target` records; `preparation` turns raw sentence pairs into
them (what SageMaker's create_vocab_proto.py does); `network` is the encoder, attentional decoder
and beam search; `optim` the optimizers and schedules; `training` the job with its checkpoints
(`checkpoints` for resume); `evaluation` the validation metrics; `translator` the trained model;
`inference` the endpoint's formats; `sample_data` generated translation tasks. Only the declaration
is imported here, so looking the algorithm up stays cheap.

Where nbsage's Seq2Seq differs from SageMaker's, on purpose or by necessity:

* It trains on CPU too (SageMaker's container is GPU-only), on one device (SageMaker uses every
  GPU of the instance); like SageMaker, it refuses jobs with more than one instance.
* decoder_type=cnn is refused (the decoder is the attentional RNN). The attention types are
  SageMaker's four: mlp, dot, bilinear, fixed; the coverage variants are not among them.
* The decoder is Sockeye's: the attentional hidden state is fed back into the next word's input
  (input feeding) and, with rnn_attention_in_upper_layers, the context goes into the upper layers.
  Models saved by nbsage before input feeding (config.json format_version 1) still load and
  translate with the decoder they were trained with.
* validation:bleu is sacrebleu's corpus BLEU with its default 13a tokenizer (SageMaker's variant is
  not published).
* Records longer than max_seq_len_source/target are truncated, as SageMaker documents, and the job
  log says how many were.
* The model directory holds `params.best` (torch weights), `config.json` and both vocab files.
"""
from nbsage.algorithms.seq2seq.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
