"""Write notebooks/blazingtext.ipynb (run `python notebooks/make_blazingtext_notebook.py` after editing here)."""
from __future__ import annotations


from notebook_builder import write

CELLS = [
    ("md", """# BlazingText with nbsage: word vectors and text classification

SageMaker's built-in BlazingText — the same hyperparameters, `__label__` input lines, log lines,
metrics, model files and endpoint requests — trained and served on this machine.

The text is real and needs no download: the sentences of the docstrings of six Python packages
installed with nbsage (numpy, scipy, scikit-learn, matplotlib, pandas, torch). Word2Vec learns
vectors for their vocabulary; the classifier learns to tell which package a sentence was written
for, and a confusion matrix shows which libraries read alike.

Run headless with `python -m nbsage.demo notebooks/blazingtext.ipynb`, or cell by cell in JupyterLab."""),
    ("params", """# Parameters (papermill overrides these)
epochs = 5
vector_dim = 100
sentences_per_package = 12000   # None: every sentence
supervised_epochs = 10
seed = 0"""),
    ("md", """## 1. Data: docstring sentences, labelled with their package

`docstring_corpus` reads the packages' `.py` files (it imports nothing), keeps the prose of the
docstrings (no doctests, parameter tables or code), splits it into sentences and tokenises them.
BlazingText's supervised format is one `__label__<name> tokens ...` line per example; Word2Vec
reads the same sentences without labels."""),
    ("code", """from collections import Counter
from pathlib import Path

import numpy as np
from nbsage.algorithms.blazingtext.sample_data import docstring_corpus

data = docstring_corpus(max_sentences_per_package=sentences_per_package, seed=seed)
order = np.random.default_rng(seed).permutation(len(data))
n_train, n_val = int(0.7 * len(data)), int(0.15 * len(data))
train_idx, val_idx, test_idx = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]

data_dir = Path("data/blazingtext")
data.write(data_dir / "corpus.txt", labelled=False)
data.write(data_dir / "train.txt", train_idx)
data.write(data_dir / "validation.txt", val_idx)
print(f"{len(data)} sentences, {sum(len(s.split()) for s in data.sentences):,} words:", dict(Counter(data.labels)))
print((data_dir / "train.txt").read_text().splitlines()[0])"""),
    ("md", """## 2. Word2Vec: skip-gram with subwords

`subwords=True` also learns vectors for character n-grams (3 to 6 characters), so any word —
even one never seen — gets a vector. The job writes `vectors.txt` and `vectors.bin` (word2vec
text and binary formats, which gensim and most tools read), and `eval.json` with
`train:mean_rho`, the Spearman correlation of the vectors with human similarity judgements on
BlazingText's built-in word pairs."""),
    ("code", """import nbsage
from nbsage import TrainingInput

w2v = nbsage.Estimator(
    "blazingtext",
    hyperparameters={"mode": "skipgram", "subwords": True, "vector_dim": vector_dim, "window_size": 5,
                     "negative_samples": 5, "epochs": epochs, "min_count": 5, "learning_rate": 0.025,
                     "sampling_threshold": 1e-4, "evaluation": True},
    instance_type="local",
)
w2v_job = w2v.fit({"train": TrainingInput(str(data_dir / "corpus.txt"), content_type="text/plain")})
w2v_metrics = w2v_job.final_metrics()
print("train:mean_rho", round(w2v_metrics.get("train:mean_rho", float("nan")), 4))"""),
    ("code", """import tarfile, tempfile

model_dir = Path(tempfile.mkdtemp(prefix="blazingtext-vectors-"))
with tarfile.open(w2v.model_data) as tar:
    print(sorted(tar.getnames()))
    tar.extractall(model_dir, filter="data")
print((model_dir / "vectors.txt").read_text().splitlines()[0], "(words, dimensions)")"""),
    ("md", """Nearest neighbours by cosine similarity, read straight from `vectors.txt`:"""),
    ("code", """import pandas as pd
from nbsage.algorithms.blazingtext.model import read_vectors

vectors = read_vectors(model_dir / "vectors.txt")
queries = [w for w in ["array", "matrix", "plot", "regression", "gpu", "string", "probability", "file"]
           if w in vectors.index]
table = pd.DataFrame({q: [f"{w} ({s:.2f})" for w, s in vectors.most_similar(q, 6)] for q in queries})
table"""),
    ("md", """The endpoint answers SageMaker's Word2Vec request, `{"instances": [words]}` → `[{"vector": [...],
"word": ...}]`. Here the model is loaded in this kernel with the same handler the endpoint uses:
a word the corpus never had still gets a vector from its character n-grams."""),
    ("code", """import json
from nbsage import algorithms

handler = algorithms.get("blazingtext").load(model_dir)
unseen = next(w for w in ["dataframes", "tensorize", "arraylike", "plotting", "matrices"] if w not in vectors.index)
body, _ = handler.invoke(json.dumps({"instances": [unseen, "array"]}).encode(), "application/json", "application/json")
answer = json.loads(body)
oov = np.array(answer[0]["vector"])
sims = vectors.vectors @ oov / (np.linalg.norm(vectors.vectors, axis=1) * np.linalg.norm(oov) + 1e-9)
print(f"{unseen!r} is not in the vocabulary; its subword vector is nearest to:",
      [vectors.words[i] for i in np.argsort(-sims)[:6]])"""),
    ("md", """## 3. Text classification: which package wrote this sentence?

`mode="supervised"` is fastText's classifier: the mean of the word and word-bigram vectors
(`word_ngrams=2`, hashed into `buckets`) feeds a softmax over the labels. With a validation
channel the job reports `validation:accuracy` after every epoch; `early_stopping` keeps the best
epoch's weights once accuracy stops improving for `patience` epochs. A few thousand sentences
need a larger step than BlazingText's default learning rate of 0.05, hence 0.5 here."""),
    ("code", """classifier = nbsage.Estimator(
    "blazingtext",
    hyperparameters={"mode": "supervised", "epochs": supervised_epochs, "learning_rate": 0.5,
                     "word_ngrams": 2, "vector_dim": 50, "min_count": 2, "early_stopping": True,
                     "patience": 2, "min_epochs": 3},
    instance_type="local",
)
clf_job = classifier.fit({
    "train": TrainingInput(str(data_dir / "train.txt"), content_type="text/plain"),
    "validation": TrainingInput(str(data_dir / "validation.txt"), content_type="text/plain"),
})
clf_metrics = clf_job.final_metrics()
print("validation:accuracy", round(clf_metrics["validation:accuracy"], 4))
print("\\n".join(line for line in clf_job.logs() if line.startswith("#") and "accuracy" in line))"""),
    ("md", """Deploy the classifier and send the held-out sentences as SageMaker's BlazingText request:
`{"instances": [...], "configuration": {"k": 2}}` → `[{"label": [...], "prob": [...]}, ...]`."""),
    ("code", """from nbsage.deserializers import JSONDeserializer
from nbsage.serializers import JSONSerializer

predictor = classifier.deploy(initial_instance_count=1, instance_type="local",
                              serializer=JSONSerializer(), deserializer=JSONDeserializer())
test_sentences = [data.sentences[i] for i in test_idx]
test_labels = [data.labels[i] for i in test_idx]
predictions = []
for start in range(0, len(test_sentences), 500):
    predictions += predictor.predict({"instances": test_sentences[start:start + 500], "configuration": {"k": 2}})
print(test_sentences[0]); print(predictions[0])
predicted = [p["label"][0].removeprefix("__label__") for p in predictions]
test_accuracy = float(np.mean([p == t for p, t in zip(predicted, test_labels)]))
print(f"endpoint accuracy on {len(test_labels)} held-out sentences: {test_accuracy:.3f}")"""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt

packages = sorted(set(test_labels))
confusion = pd.crosstab(pd.Series(test_labels, name="package"), pd.Series(predicted, name="predicted"),
                        normalize="index").reindex(index=packages, columns=packages, fill_value=0)
fig, ax = plt.subplots(figsize=(6.5, 5.5))
im = ax.imshow(confusion.to_numpy(), cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(len(packages)), packages, rotation=45, ha="right")
ax.set_yticks(range(len(packages)), packages)
for i in range(len(packages)):
    for j in range(len(packages)):
        v = confusion.iat[i, j]
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v > 0.5 else "black", fontsize=9)
ax.set_xlabel("predicted package"); ax.set_ylabel("true package")
ax.set_title(f"Which package wrote this docstring sentence? (accuracy {test_accuracy:.2f})")
fig.colorbar(im, ax=ax, fraction=0.046)
plt.tight_layout()
plt.show()
off_diagonal = confusion.where(~np.eye(len(packages), dtype=bool)).stack()
print("most confused:", off_diagonal.idxmax(), round(float(off_diagonal.max()), 3))"""),
    ("md", "## 4. Clean up"),
    ("code", """predictor.delete_endpoint()"""),
    ("code", """from IPython.display import display
summary = {"word2vec job": w2v_job.name, "classifier job": clf_job.name,
           "train:mean_rho": round(w2v_metrics.get("train:mean_rho", float("nan")), 4),
           "vocabulary": len(vectors.words), "neighbours of array": [w for w, _ in vectors.most_similar("array", 5)]
           if "array" in vectors.index else [],
           "oov word": unseen, "oov vector norm": round(float(np.linalg.norm(oov)), 4),
           "validation:accuracy": round(clf_metrics["validation:accuracy"], 4),
           "endpoint accuracy": round(test_accuracy, 4), "labels": packages}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]


if __name__ == "__main__":
    write(CELLS, "blazingtext.ipynb")
