"""Object Detection (SSD): inputs, bad input, training jobs, quality, the endpoint and batch transform.

One small model is trained per module on generated shapes (RecordIO with a validation channel)
and reused; other jobs are one-epoch jobs on a handful of images. Jobs call the algorithm's
`train(env)` on a real job root in-process (the contract tests run it through the runtime).
"""
from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nbsage import algorithms
from nbsage.errors import DataError, HyperparameterError, InvalidRequest
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from nbsage.algorithms.object_detection import boxes as box_ops  # noqa: E402
from nbsage.algorithms.object_detection import sample_data as sd  # noqa: E402
from nbsage.algorithms.object_detection.evaluation import mean_ap  # noqa: E402
from nbsage.algorithms.object_detection.records import read_examples  # noqa: E402

OD = algorithms.get("object-detection")
SIZE = 64
TINY = {"num_classes": "2", "num_training_samples": "6", "epochs": "1", "mini_batch_size": "4",
        "_small_image_shape": str(SIZE), "_network_width": "0.125", "optimizer": "adam", "learning_rate": "0.003"}
# the quality job: 48-pixel inputs, a network of an eighth of SSD's width, horizontal flips only (nbsage's
# additions for CPU-sized runs; see the declaration)
# Adam at 0.002: 0.005 plateaus near 0.55-0.65 on this small network, 0.001 is still near 0.7 after 8 epochs
QUALITY = {**TINY, "num_training_samples": "320", "epochs": "10", "mini_batch_size": "16", "_small_image_shape": "48",
           "_augmentation": "flip", "learning_rate": "0.002", "lr_scheduler_step": "8", "lr_scheduler_factor": "0.3"}
QUALITY_SIZE = 48
# issue 17's goal; this job reached best validation mAPs 0.89, 0.84 and 0.91 with data and _seed 0, 1, 2
MAP_FLOOR = 0.8
RECORDIO = "application/x-recordio"


def job(tmp_path: Path, hps: dict, channels: dict, checkpoints: bool = False) -> JobRoot:
    """A job root; channels {name: (content type, writer(folder))}."""
    request = {"TrainingJobName": "od", "AlgorithmSpecification": {"TrainingImage": "object-detection"},
               "HyperParameters": hps, "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1},
               "InputDataConfig": [{"ChannelName": name, "ContentType": ct} for name, (ct, _) in channels.items()]}
    if checkpoints:
        request["CheckpointConfig"] = {"S3Uri": "file:///unused", "LocalPath": str(tmp_path / "checkpoints")}
    root = write_job_configs(JobRoot(tmp_path), request)
    for name, (_, write) in channels.items():
        root.channel_dir(name).mkdir(parents=True, exist_ok=True)
        write(root.channel_dir(name))
    return root


def run(root: JobRoot) -> list[str]:
    """Train in-process; the job's log lines."""
    env = TrainingEnvironment(root)
    lines: list[str] = []
    env.log = lines.append
    OD.train(env)
    return lines


def rec(dataset, name="train"):
    """A channel writer: only the .rec (and .idx) of the dataset, as im2rec leaves them."""
    def write(folder: Path):
        staging = folder.parent / f".{folder.name}-lst"
        sd.write_recordio(dataset, staging, name)
        shutil.copy(staging / f"{name}.rec", folder)
        shutil.copy(staging / f"{name}.idx", folder)
    return write


def value(lines, pattern) -> list[float]:
    return [float(m.group(1)) for line in lines if (m := re.search(pattern, line))]


# ---- a model trained once ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("od")
    train = sd.make_dataset(320, QUALITY_SIZE, 2, seed=1)
    validation = sd.make_dataset(40, QUALITY_SIZE, 2, seed=2)
    root = job(tmp / "job", QUALITY, {"train": (RECORDIO, rec(train)),
                                      "validation": (RECORDIO, rec(validation, "validation"))})
    lines = run(root)
    return root, lines, validation


def test_a_job_logs_sagemaker_config_and_metric_lines_and_learns_the_shapes(trained):
    root, lines, _ = trained
    assert lines[0].endswith("}") and "Reading default configuration from" in lines[0]
    assert "Reading provided configuration from" in lines[1] and "hyperparameters.json" in lines[1]
    assert any("use_pretrained_model=1: no ImageNet-pretrained base network can be downloaded" in l for l in lines)
    text = "\n".join(lines)
    for metric in OD.metrics:
        if metric.name != "validation:coco_AP":
            assert re.search(metric.regex, text), metric.name
    ce = value(lines, OD.metrics[1].regex)
    assert len(ce) == 10 and ce[-1] < ce[0]
    maps = value(lines, OD.metrics[0].regex)
    assert max(maps) >= MAP_FLOOR, maps
    assert sorted(p.name for p in root.model_dir.iterdir()) == ["hyperparams.json", "model_algo_1-0000.params"]


def test_the_endpoint_answers_normalised_boxes_of_the_right_class_and_refuses_what_is_not_an_image(trained):
    root, _, validation = trained
    handler = OD.load(str(root.model_dir))
    from nbsage.formats.image import encode_image
    hits = 0
    for image, objects in validation[:10]:
        for fmt, ct in (("JPEG", "image/jpeg"), ("PNG", "application/x-image")):
            body, accept = handler.invoke(encode_image(image, fmt), ct, "application/json")
            assert accept == "application/json"
            pred = np.asarray(json.loads(body)["prediction"])
            assert pred.shape[1] == 6 and (pred[:, 2:] >= 0).all() and (pred[:, 2:] <= 1).all()
            assert (np.diff(pred[:, 1]) <= 0).all()  # best first
            top = pred[0]
            overlaps = box_ops.iou(torch.tensor(top[None, 2:]), torch.tensor(objects[:, 1:])).numpy()[0]
            hits += int(objects[overlaps.argmax(), 0] == top[0] and overlaps.max() >= 0.5)
    assert hits >= 6  # of 20: the CI-sized model is weak (see MAP_FLOOR)
    with pytest.raises(InvalidRequest, match=r"request body \(image/jpeg, 11 bytes\): not a readable JPEG or PNG"):
        handler.invoke(b"not a photo", "image/jpeg", None)


def model_archive(root: JobRoot, folder: Path) -> Path:
    """The trained model directory as the model.tar.gz a job leaves."""
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in root.model_dir.iterdir():
            tar.add(f, arcname=f.name)
    return archive


def test_an_endpoint_answers_annotations_in_pixels_when_accept_asks_and_names_what_it_accepts(trained, session,
                                                                                               tmp_path):
    from PIL import Image

    from nbsage.errors import ModelError
    from nbsage.formats.image import encode_image
    from nbsage.model import Model
    root, _, validation = trained
    predictor = Model(str(model_archive(root, tmp_path)), algorithm="object-detection",
                      sagemaker_session=session).deploy(endpoint_name="od-accept")
    image = np.kron(validation[0][0], np.ones((2, 3, 1), np.uint8))  # 96 x 144: the two axes scale differently
    height, width = image.shape[:2]
    body = encode_image(image, "PNG")

    def ask(accept, data=body, content_type="image/png"):
        return predictor.predict(data, initial_args={"ContentType": content_type, "Accept": accept})
    plain = ask("application/json")["prediction"]
    answer = ask("application/json;annotation=1")
    assert answer["image_size"] == [{"width": width, "height": height, "depth": 3}]
    assert len(answer["annotations"]) == len(plain) >= 1
    for a, (c, score, x0, y0, x1, y1) in zip(answer["annotations"], plain):
        assert list(a) == ["class_id", "score", "left", "top", "width", "height"]
        assert a["class_id"] == c and a["score"] == pytest.approx(score, abs=1e-6)
        assert (a["left"], a["top"]) == (round(x0 * width), round(y0 * height))
        assert (a["left"] + a["width"], a["top"] + a["height"]) == (round(x1 * width), round(y1 * height))
    assert ask("application/json; annotation=0") == {"prediction": plain}
    # a PNG with an alpha channel (a screenshot, say) is read as its colours, as SageMaker's container reads it
    rgba = io.BytesIO()
    Image.fromarray(np.dstack([image, np.full((height, width), 255, np.uint8)]), "RGBA").save(rgba, format="PNG")
    assert ask("application/json", rgba.getvalue()) == {"prediction": plain}
    for accept in ("text/csv", "application/json;annotation=yes"):
        with pytest.raises(ModelError) as info:
            ask(accept)
        assert info.value.status == 406 and "application/json;annotation=1" in info.value.message, info.value.message
    with pytest.raises(ModelError) as info:
        ask("application/json", b'{"instances": []}', "application/json")
    assert info.value.status == 415 and "image/jpeg, image/png, application/x-image" in info.value.message
    assert ask("application/json;annotation=1")["annotations"] == answer["annotations"]  # still serving
    predictor.delete_endpoint()


def test_batch_transform_of_a_folder_of_images_writes_one_prediction_per_image(trained, session, tmp_path):
    from nbsage.model import Model
    root, _, validation = trained
    archive = model_archive(root, tmp_path)
    paths = sd.write_images(validation[:3], tmp_path / "in")
    transformer = Model(str(archive), algorithm="object-detection", sagemaker_session=session).transformer(
        instance_count=1, output_path=str(tmp_path / "out"), accept="application/json")
    transformer.transform(str(tmp_path / "in"), content_type="image/jpeg", split_type=None, logs=False)
    for path in paths:
        answer = json.loads((tmp_path / "out" / f"{path.name}.out").read_text())
        assert len(answer["prediction"]) >= 1 and len(answer["prediction"][0]) == 6


# ---- the other inputs, incremental training, resume ---------------------------------------------------------
def test_json_annotations_train_incrementally_from_the_model_channel(trained, tmp_path):
    model_dir = trained[0].model_dir
    data = sd.make_dataset(6, SIZE, 2, seed=5)

    def images(folder):
        sd.write_json_annotations(data, folder, folder.parent / "train_annotation", num_classes=2)

    def model(folder):
        with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
            for f in model_dir.iterdir():
                tar.add(f, arcname=f.name)
    # the annotation channel labelled with the images' type, as SageMaker's example notebooks label it
    root = job(tmp_path, TINY, {"train": ("image/jpeg", images), "train_annotation": ("image/png", lambda f: None),
                                "model": ("application/x-sagemaker-model", model)})
    lines = run(root)
    assert any("Incremental training: starting from the model in the model channel" in l for l in lines)
    assert (root.model_dir / "model_algo_1-0000.params").exists()


def test_a_weights_file_in_the_model_channel_starts_the_base_network_and_a_bad_one_is_named(tmp_path):
    from nbsage.algorithms.object_detection.network import SSD
    base = SSD("vgg-16", 2, SIZE, 0.125).base.state_dict()  # a base network's weights, named as torch names them
    data = sd.make_dataset(4, SIZE, 2, seed=6)

    def weights(body):
        def write(folder):
            if isinstance(body, bytes):
                (folder / "vgg16.pth").write_bytes(body)
            else:
                torch.save(body, folder / "vgg16.pth")
        return write
    root = job(tmp_path / "good", TINY, {"train": (RECORDIO, rec(data)),
                                         "model": ("application/x-sagemaker-model", weights(base))})
    lines = run(root)
    assert any(f"Base network weights from vgg16.pth: {len(base)} tensors loaded" in l for l in lines)
    assert not any("trains from scratch" in l for l in lines)
    bad = job(tmp_path / "bad", TINY, {"train": (RECORDIO, rec(data)),
                                       "model": ("application/x-sagemaker-model", weights(b"not torch"))})
    with pytest.raises(DataError, match=r"vgg16\.pth in the model channel is not a torch weights file"):
        run(bad)


def test_augmented_manifests_read_as_pipe_streams_and_as_files(tmp_path):
    from nbsage.formats.augmented_manifest import write_stream
    data = sd.make_dataset(3, SIZE, 2, seed=3)
    paths = sd.write_images(data, tmp_path / "images")
    lines = []
    for (image, objects), path in zip(data, paths):
        anns = [{"class_id": int(c), "left": x0 * SIZE, "top": y0 * SIZE, "width": (x1 - x0) * SIZE,
                 "height": (y1 - y0) * SIZE} for c, x0, y0, x1, y1 in objects.tolist()]
        lines.append({"source-ref": str(path), "bounding-box": {
            "image_size": [{"width": SIZE, "height": SIZE, "depth": 3}], "annotations": anns},
            "bounding-box-metadata": {"class-map": {"0": "rectangle"}}})
    manifest = tmp_path / "train.manifest"
    manifest.write_text("".join(json.dumps(l) + "\n" for l in lines))

    def stream(folder):  # what Pipe mode delivers with RecordWrapperType RecordIO
        with open(folder / "part-00000", "wb") as out:
            write_stream([manifest], ["source-ref", "bounding-box"], out, "RecordIO")
    for writer in (stream, lambda folder: shutil.copy(manifest, folder)):
        root = job(tmp_path / f"job{id(writer)}", TINY, {"train": (RECORDIO, writer)})
        examples = read_examples(TrainingEnvironment(root), "train", 2, 350, print)
        assert len(examples) == 3
        for ex, (_, objects) in zip(examples, data):
            np.testing.assert_allclose(ex.objects, objects, atol=1e-5)


def test_a_job_with_checkpoints_resumes_after_its_last_epoch(tmp_path):
    data = sd.make_dataset(6, SIZE, 2, seed=4)
    root = job(tmp_path / "a", TINY, {"train": (RECORDIO, rec(data))}, checkpoints=True)
    run(root)
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir()) == [
        "object-detection-checkpoint-epoch00000.pt"]
    again = job(tmp_path / "a", {**TINY, "epochs": "2"}, {"train": (RECORDIO, lambda f: None)}, checkpoints=True)
    lines = run(again)
    assert any("Resuming from checkpoint" in l and "epochs 0-0 done" in l for l in lines)
    assert sum("train cross_entropy" in l for l in lines) == 1


def test_early_stopping_stops_when_validation_map_stalls_and_keeps_the_best_epoch(tmp_path):
    hps = {**TINY, "epochs": "8", "early_stopping": "True", "early_stopping_min_epochs": "2",
           "early_stopping_patience": "1", "early_stopping_tolerance": "1.0"}  # improving = doubling the mAP
    root = job(tmp_path, hps, {"train": (RECORDIO, rec(sd.make_dataset(6, SIZE, 2, seed=4))),
                               "validation": (RECORDIO, rec(sd.make_dataset(3, SIZE, 2, seed=9), "validation"))})
    lines = run(root)
    maps = value(lines, OD.metrics[0].regex)
    assert 2 <= len(maps) < 8 and any("Early stopping: validation mAP has not improved in 1 epochs" in l for l in lines)
    assert len(value(lines, OD.metrics[1].regex)) == len(maps)  # no epoch trained after the stop
    best = int(re.search(r"Keeping the network of epoch (\d+)", "\n".join(lines)).group(1))
    assert maps[best] == max(maps)


def test_freeze_layer_pattern_freezes_the_matching_layers_and_names_them(tmp_path):
    from nbsage.algorithms.object_detection.network import SSD
    from nbsage.algorithms.object_detection.training import _freeze
    from nbsage.algorithms.log_lines import SageMakerLog
    net = SSD("vgg-16", 2, SIZE, 0.125)
    env = TrainingEnvironment(job(tmp_path, TINY, {}))
    lines = []
    env.log = lines.append
    _freeze(net, "^(conv1_|conv2_).*", SageMakerLog(env))
    frozen = sorted(n for n, ps in net.layer_names().items() if not any(p.requires_grad for p in ps))
    assert frozen == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    assert "not training conv1_1, conv1_2, conv2_1, conv2_2" in lines[0]
    with pytest.raises(DataError, match="matches no layer"):
        _freeze(SSD("resnet-50", 2, SIZE, 0.125), "^fc6", SageMakerLog(env))


# ---- bad input -----------------------------------------------------------------------------------------
def lst_channel(label: list[float], image_bytes: bytes | None = None):
    def write(folder: Path):
        image = folder / "images" / "bad.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        from nbsage.formats.image import encode_image
        image.write_bytes(image_bytes if image_bytes is not None else encode_image(np.zeros((8, 8, 3), np.uint8), "JPEG"))
        (folder / "train.lst").write_text("\t".join(["0", *map(str, label), "images/bad.jpg"]) + "\n")
    return write


@pytest.mark.parametrize("label, image, message", [
    ([2, 5, 0, 0.1, 0.1, 0.5], None, r"train\.lst line 1.*Not enough annotation packed in the list file or the "
                                     r"RecordIO file\. Each object requires at least five numbers"),
    ([2, 4, 0, 0.1, 0.1, 0.5], None, r"Not enough annotation packed"),
    ([2, 5, 0, 0.1, 0.1, 1.2, 0.5], None, r"train\.lst line 1 \(images/bad\.jpg\): object 0: box .* not inside \[0, 1\]"),
    ([2, 5, 0, 0.6, 0.1, 0.5, 0.5], None, r"object 0: box .* needs xmin < xmax"),
    ([2, 5, 0, 0.1, 0.1, 0.5, 0.5, 2, 0.1, 0.1, 0.5, 0.5], None, r"object 1: class id 2 is not below num_classes=2"),
    ([2, 5, 0, 0.1, 0.1, 0.5, 0.5], b"\xff\xd8 truncated", r"bad\.jpg.*not a readable JPEG or PNG image"),
    ([2, 5] + [0, 0.1, 0.1, 0.5, 0.5] * 3, None, r"images/bad\.jpg.*packs 17 numbers \(3 objects\); label_width=12 "
                                                 r"holds fewer: set label_width to at least 17"),
])
def test_bad_training_input_is_an_error_naming_the_file_record_and_field(tmp_path, label, image, message):
    root = job(tmp_path, TINY, {"train": (RECORDIO, lst_channel(label, image))})
    with pytest.raises(DataError, match=message):
        read_examples(TrainingEnvironment(root), "train", 2, 12, print)


def test_a_json_box_outside_the_image_names_the_annotation_file(tmp_path):
    data = sd.make_dataset(1, SIZE, 2, seed=0)

    def images(folder):
        sd.write_json_annotations(data, folder, folder, num_classes=2)
        path = next(folder.glob("*.json"))
        doc = json.loads(path.read_text())
        doc["annotations"][0]["width"] = SIZE * 2
        path.write_text(json.dumps(doc))
    root = job(tmp_path, TINY, {"train": ("image/png", images)})
    with pytest.raises(DataError, match=r"image00000\.json: annotations\[0\]: left=\S+, top=\S+, width=128, "
                                         r"height=\S+ reaches outside the 64x64 image"):
        read_examples(TrainingEnvironment(root), "train", 2, 350, print)


def test_images_not_the_size_their_annotation_says_are_named_in_a_warning(tmp_path):
    data = sd.make_dataset(2, SIZE, 2, seed=0)

    def images(folder):
        sd.write_json_annotations(data, folder, folder, num_classes=2)
        path = folder / "image00001.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "image_size": [{"width": 500, "height": 400,
                                                                                     "depth": 3}]}))
    root = job(tmp_path, TINY, {"train": ("image/jpeg", images)})
    lines = []
    examples = read_examples(TrainingEnvironment(root), "train", 2, 350, lines.append)
    assert len(examples) == 2
    [warning] = [line for line in lines if line.startswith("WARNING")]
    assert re.search(r"1 train image\(s\) are not the size their annotation's image_size says \(first: \S+"
                     r"image00001\.jpg \(annotation \S+image00001\.json\): image_size 500x400, the image is 64x64\)",
                     warning), warning


def test_annotation_channels_take_json_or_the_images_type_as_sagemakers_examples_label_them():
    from nbsage.errors import ChannelError
    for ct in ("application/json", "image/jpeg", "image/png", "application/x-image"):
        OD.check_channels({"train": "image/jpeg", "train_annotation": ct, "validation": "image/jpeg",
                           "validation_annotation": ct})
    with pytest.raises(ChannelError, match=r"'train_annotation'.*'text/csv'; it accepts application/json, image/jpeg"):
        OD.check_channels({"train": "image/jpeg", "train_annotation": "text/csv"})


def test_hyperparameters_keep_sagemakers_ranges_and_check_the_schedule():
    with pytest.raises(HyperparameterError, match="'image_shape'"):
        OD.validate({"num_classes": 2, "num_training_samples": 5, "image_shape": 128})
    with pytest.raises(HyperparameterError, match="'lr_scheduler_step'"):
        OD.validate({"num_classes": 2, "num_training_samples": 5, "lr_scheduler_step": "10, x"})
    assert OD.validate({"num_classes": 2, "num_training_samples": 5})["image_shape"] == 300


# ---- the parts -----------------------------------------------------------------------------------------------
def test_ssd300_has_its_feature_maps_and_8732_default_boxes_and_coding_round_trips():
    from nbsage.algorithms.object_detection.network import SSD
    net = SSD("vgg-16", 20, 300, 0.125)
    assert net.feature_sizes == [38, 19, 10, 5, 3, 1] and net.anchors.shape == (8732, 4)
    assert SSD("resnet-50", 20, 512, 0.125).anchors.shape == (24564, 4)
    boxes = torch.tensor([[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.9, 0.8]])
    anchors = net.anchors[:2]
    torch.testing.assert_close(box_ops.decode(box_ops.encode(boxes, anchors), anchors), boxes, atol=1e-5, rtol=0)
    gt = torch.tensor([[[1, 0.1, 0.1, 0.2, 0.2], [-1, 0, 0, 0, 0]]])
    labels, _ = box_ops.match(gt, box_ops.to_corners(net.anchors), 0.99)
    assert int((labels == 2).sum()) == 1  # matched to its best default box even below the threshold
    keep = box_ops.nms(np.array([[0, 0, 1, 1], [0, 0, 0.9, 1], [0, 0, 0.2, 0.2]], np.float32),
                       np.array([0.9, 0.8, 0.7], np.float32), 0.45)
    assert keep.tolist() == [0, 2]
    truth = [np.array([[0, 0.1, 0.1, 0.5, 0.5]], np.float32)]
    assert mean_ap([np.array([[0, 0.9, 0.1, 0.1, 0.5, 0.5]])], truth, 1, 0.5) == 1.0
    assert mean_ap([np.array([[0, 0.9, 0.6, 0.6, 0.9, 0.9]])], truth, 1, 0.5) == 0.0
    # all detections ranked by score across images, whatever their order; a duplicate is a false positive
    hit, duplicate, miss = [0, 0.9, 0.1, 0.1, 0.5, 0.5], [0, 0.8, 0.1, 0.1, 0.5, 0.5], [0, 0.95, 0.6, 0.6, 0.9, 0.9]
    assert mean_ap([np.array([duplicate, hit])], truth, 1, 0.5) == 1.0
    two = truth * 2
    assert mean_ap([np.array([hit]), np.array([miss])], two, 1, 0.5) == pytest.approx(np.mean([0.5] * 6 + [0] * 5))
