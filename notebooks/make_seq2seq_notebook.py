"""Write notebooks/seq2seq.ipynb (run `python notebooks/make_seq2seq_notebook.py` after editing here)."""
from __future__ import annotations


from notebook_builder import write

CELLS = [
    ("md", """# Seq2Seq translation with nbsage

SageMaker's built-in Sequence-to-Sequence algorithm — same hyperparameters, RecordIO-protobuf
`source`/`target` records, vocab files, validation metrics and endpoint request/response shapes —
trained and served on this machine. The translation task is generated, so nothing is downloaded:
numbers written as English words, translated into French words by the `num2words` package
("three hundred and forty - two" → "trois cent quarante - deux"). Word order mostly carries over,
but not always ("seventy" → "soixante - dix", "ninety - one" → "quatre - vingt - onze"), so the
model has to learn where to look: the attention heat map at the end shows it.

Run headless with `python -m nbsage.demo notebooks/seq2seq.ipynb`, or cell by cell in JupyterLab."""),
    ("params", """# Parameters (papermill overrides these)
num_train = 3000
num_validation = 200
max_number = 10000
max_num_epochs = 12
rnn_num_hidden = 128
num_embed = 64
batch_size = 64
learning_rate = 0.005"""),
    ("md", """## 1. Data: sentence pairs → vocab files and RecordIO-protobuf records

`prepare` does what SageMaker's `create_vocab_proto.py` does: it builds `vocab.src.json` and
`vocab.trg.json` (`<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3, then words by frequency) from the training
sentences and writes `train.rec` / `val.rec` with int32 `source` and `target` token ids — the three
channels the job reads. (`nbsage seq2seq-prepare` does the same for two parallel text files.)"""),
    ("code", """from nbsage.algorithms.seq2seq.preparation import prepare
from nbsage.algorithms.seq2seq.sample_data import number_pairs

pairs = number_pairs(num_train + num_validation + 5, high=max_number, seed=0)
train_pairs = pairs[:num_train]
validation_pairs = pairs[num_train:num_train + num_validation]
unseen = pairs[num_train + num_validation:]          # numbers the model never saw, to translate at the end
data = prepare(train_pairs, validation_pairs, "data/seq2seq")
for english, french in train_pairs[:3]:
    print(f"{english!r:55} -> {french!r}")
print(data.counts, "| vocabularies:", len(data.source_vocab), "English and", len(data.target_vocab), "French tokens")"""),
    ("md", """## 2. Train SageMaker's built-in Seq2Seq

A bidirectional LSTM encoder and an LSTM decoder with `mlp` (Bahdanau) attention. Every
`checkpoint_frequency_num_batches` batches the job scores the validation set — perplexity, token
accuracy and BLEU (sacrebleu's corpus BLEU of beam-search translations) — keeps the best checkpoint by
`optimized_metric`, and stops early after `checkpoint_threshold` checkpoints without improvement."""),
    ("code", """import nbsage
from nbsage import TrainingInput

estimator = nbsage.Estimator(
    "seq2seq",
    hyperparameters={
        "max_num_epochs": max_num_epochs,
        "rnn_num_hidden": rnn_num_hidden,
        "num_embed_source": num_embed,
        "num_embed_target": num_embed,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "checkpoint_frequency_num_batches": max(1, num_train // batch_size),   # about once per epoch
        "optimized_metric": "bleu",
        "bleu_sample_size": -1,
        "beam_size": 3,
    },
    instance_type="local",
)
recordio, json_type = "application/x-recordio-protobuf", "application/json"
job = estimator.fit({
    "train": TrainingInput(str(data.train), content_type=recordio),
    "validation": TrainingInput(str(data.validation), content_type=recordio),
    "vocab": TrainingInput(str(data.vocab), content_type=json_type),
})
metrics = job.final_metrics()
print({k: round(v, 4) for k, v in metrics.items() if k.startswith("validation:")})"""),
    ("md", """## 3. Deploy and translate

The endpoint takes SageMaker's Seq2Seq request — `{"instances": [{"data": "words ..."}]}` — maps the
words with the model's own vocabulary, translates with beam search and answers
`{"predictions": [{"target": "..."}]}`. Asking for `"configuration": {"attention_matrix": "true"}`
adds the attention weights, one row per French word, one column per English word."""),
    ("code", """from nbsage.deserializers import JSONDeserializer
from nbsage.serializers import JSONSerializer

predictor = estimator.deploy(initial_instance_count=1, instance_type="local",
                             serializer=JSONSerializer(), deserializer=JSONDeserializer())
request = {"instances": [{"data": english} for english, _ in unseen]}
translations = [p["target"] for p in predictor.predict(request)["predictions"]]
correct = 0
for (english, french), translation in zip(unseen, translations):
    correct += translation == french
    print(f"{english}\\n   -> {translation}\\n      {'✓' if translation == french else 'expected ' + french}")
print(f"{correct} of {len(unseen)} exactly right")"""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

english = max((e for e, _ in unseen), key=lambda s: len(s.split()))
answer = predictor.predict({"instances": [{"data": english, "configuration": {"attention_matrix": "true"}}]})
prediction = answer["predictions"][0]
matrix = np.array(prediction["matrix"])                          # [French words, English words]
source_words, target_words = english.split(), prediction["target"].split()
fig, ax = plt.subplots(figsize=(0.6 * len(source_words) + 2, 0.45 * len(target_words) + 1.5))
image = ax.imshow(matrix, cmap="viridis", aspect="auto", vmin=0, vmax=1)
ax.set_xticks(range(len(source_words)), source_words, rotation=45, ha="right")
ax.set_yticks(range(len(target_words)), target_words)
ax.set_xlabel("English (source)")
ax.set_ylabel("French (translation)")
ax.set_title("Where the decoder looked for each French word")
fig.colorbar(image, ax=ax, fraction=0.04)
plt.tight_layout()
plt.show()"""),
    ("md", "## 4. Clean up"),
    ("code", """predictor.delete_endpoint()"""),
    ("code", """from IPython.display import display
summary = {"executed job": job.name, "validation:bleu": round(metrics["validation:bleu"], 2),
           "validation:perplexity": round(metrics["validation:perplexity"], 4),
           "validation:accuracy": round(metrics["validation:accuracy"], 4),
           "translated": len(translations), "exactly right": int(correct),
           "matrix shape": list(matrix.shape), "source words": len(source_words),
           "target words": len(target_words)}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]


if __name__ == "__main__":
    write(CELLS, "seq2seq.ipynb")
