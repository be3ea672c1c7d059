"""Object Detection's declaration: every hyperparameter, its channels and its metrics.

Names, defaults and valid values follow SageMaker's object-detection-api-config page. Three
hyperparameters are nbsage additions, `_`-prefixed as SageMaker's hidden keys are and folded under
"Advanced": `_network_width` scales the channels of every layer (1 is SageMaker's network; a
fraction trains in seconds on a CPU) and `_small_image_shape` trains and serves at a square size
below 300 (SageMaker's image_shape keeps its >= 300 range), and `_augmentation=flip` leaves out SSD's
zoom-out, crop and colour jitter (fewer steps to converge on small generated sets). They exist so that tests, demos and
notebooks run on a laptop; a job that sets neither trains SageMaker's SSD-300/512. Metric regexes
scrape the `#quality_metric` lines `training.py` prints, as SageMaker's MetricDefinitions do.
"""
from __future__ import annotations

import re

from nbsage.algorithms.base import (Algorithm, Channel, Hyperparameter, Metric, Range, at_least, closed,
                                    greater_than, imported_on_call, open_interval)
from nbsage.errors import HyperparameterError

BASE_NETWORKS = ("vgg-16", "resnet-50")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adadelta")
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
RECORDIO = "application/x-recordio"
MODEL_CONTENT_TYPE = "application/x-sagemaker-model"
ANNOTATION_TYPES = ("application/json", *IMAGE_TYPES)
_UNIT = Range(0.0, 1.0, low_inclusive=False)  # (0, 1]

HYPERPARAMETERS = (
    Hyperparameter("num_classes", "int", required=True, range=greater_than(0),
                   help="number of object classes (class ids 0 .. num_classes-1); background is added internally"),
    Hyperparameter("num_training_samples", "int", required=True, range=greater_than(0),
                   help="number of training images; with lr_scheduler_step it places the learning-rate drops"),
    Hyperparameter("base_network", "str", default="vgg-16", choices=BASE_NETWORKS,
                   help="the base network: vgg-16 (SSD's VGG with L2Norm on conv4_3) or resnet-50"),
    Hyperparameter("early_stopping", "bool", default=False,
                   help="stop when validation:mAP has not improved for early_stopping_patience epochs"),
    Hyperparameter("early_stopping_min_epochs", "int", default=10, range=greater_than(0),
                   help="epochs always trained before early stopping may stop"),
    Hyperparameter("early_stopping_patience", "int", default=5, range=greater_than(0),
                   help="epochs without improvement (see early_stopping_tolerance) before stopping"),
    Hyperparameter("early_stopping_tolerance", "float", default=0.0, range=closed(0.0, 1.0),
                   help="relative mAP improvement over the best so far that counts as an improvement"),
    Hyperparameter("epochs", "int", default=30, range=greater_than(0), help="passes over the training data"),
    Hyperparameter("freeze_layer_pattern", "str", default="",
                   help="regular expression on layer names (conv1_1 .. conv5_3, fc6, fc7 for vgg-16; conv1, "
                        "layer1 .. layer4 for resnet-50); matching layers are not trained"),
    Hyperparameter("image_shape", "int", default=300, range=at_least(300),
                   help="images are resized to this square size (300 and 512 recommended)"),
    Hyperparameter("kv_store", "str", choices=("dist_sync", "dist_async"), advanced=True,
                   help="weight synchronisation with several instances (both average gradients here)"),
    Hyperparameter("label_width", "int", default=350, range=at_least(7),
                   help="length of a packed label: 2 header values + 5 per object; at least "
                        "2 + 5 x the most objects in one image"),
    Hyperparameter("learning_rate", "float", default=0.001, range=_UNIT, help="initial learning rate"),
    Hyperparameter("lr_scheduler_factor", "float", default=0.1, range=open_interval(0.0, 1.0),
                   help="the learning rate is multiplied by this at each epoch of lr_scheduler_step"),
    Hyperparameter("lr_scheduler_step", "str", default="",
                   help="comma-separated epochs at which the learning rate drops, e.g. '10, 20'"),
    Hyperparameter("mini_batch_size", "int", default=32, range=greater_than(0),
                   help="images per mini-batch on each instance (a multi-instance dist_sync job's batch is "
                        "mini_batch_size x instances)"),
    Hyperparameter("momentum", "float", default=0.9, range=_UNIT, help="momentum of sgd"),
    Hyperparameter("nms_threshold", "float", default=0.45, range=_UNIT,
                   help="non-maximum suppression: a box overlapping a higher-scoring one of its class "
                        "by more IoU than this is dropped"),
    Hyperparameter("optimizer", "str", default="sgd", choices=OPTIMIZERS, help="the optimizer"),
    Hyperparameter("overlap_threshold", "float", default=0.5, range=_UNIT,
                   help="IoU at which a detection matches a ground-truth box in validation:mAP"),
    Hyperparameter("use_pretrained_model", "int", default=1, choices=(0, 1),
                   help="1: start from an ImageNet-pretrained base network (none can be downloaded here: "
                        "a weights file in the model channel is used, else training starts from scratch)"),
    Hyperparameter("weight_decay", "float", default=0.0005, range=open_interval(0.0, 1.0),
                   help="L2 weight decay (sgd, rmsprop; adam and adadelta too here)"),
    Hyperparameter("_network_width", "float", default=1.0, range=_UNIT,
                   advanced=True,
                   help="nbsage addition: fraction of every layer's channels (1: SageMaker's network); "
                        "small fractions train quickly on a CPU"),
    Hyperparameter("_small_image_shape", "int", range=closed(32, 299), advanced=True,
                   help="nbsage addition: train and serve at this square size instead of image_shape "
                        "(SageMaker accepts only >= 300); for tests and CPU demos"),
    Hyperparameter("_augmentation", "str", default="ssd", choices=("ssd", "flip"), advanced=True,
                   help="nbsage addition: ssd (SageMaker's: zoom out, IoU-constrained crop, flip, colour jitter) or "
                        "flip (horizontal flip only: converges in fewer steps, for tests and CPU demos)"),
    Hyperparameter("_seed", "int", default=0, range=at_least(0), advanced=True,
                   help="nbsage addition: seeds weights, shuffling and augmentation"),
)

CHANNELS = (
    Channel("train", (RECORDIO, *IMAGE_TYPES), required=True,
            help="RecordIO image list (.rec, or a .lst with its images), JPEG/PNG images with train_annotation, "
                 "or an augmented manifest in Pipe mode (RecordWrapperType RecordIO)"),
    Channel("validation", (RECORDIO, *IMAGE_TYPES),
            help="as train; scored with validation:mAP after every epoch"),
    # SageMaker's own example notebooks label the annotation channels with the images' type
    # (image/jpeg or image/png), and its container reads them as JSON whatever the label says
    Channel("train_annotation", ANNOTATION_TYPES,
            help="one JSON annotation per train image, same base name (labelled application/json, or with the "
                 "images' type as SageMaker's examples do)"),
    Channel("validation_annotation", ANNOTATION_TYPES,
            help="one JSON annotation per validation image, same base name (as train_annotation)"),
    Channel("model", (MODEL_CONTENT_TYPE,),
            help="a previous model (incremental training) or a base-network weights file"),
)

METRICS = (
    Metric("validation:mAP", "Maximize",
           r"#quality_metric: host=\S+, epoch=\S+, validation mAP <score>=\((\S+)\)",
           "VOC07 11-point mean average precision at overlap_threshold"),
    Metric("train:cross_entropy", "Minimize",
           r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train cross_entropy <loss>=(\S+)",
           "classification loss (softmax cross-entropy with 3:1 hard-negative mining)"),
    Metric("train:smooth_l1", "Minimize",
           r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train smooth_l1 <loss>=(\S+)",
           "box regression loss of the matched default boxes"),
    Metric("validation:coco_AP", "Maximize",
           r"#quality_metric: host=\S+, epoch=\S+, validation coco_AP <score>=\((\S+)\)",
           "nbsage addition: COCO-style AP averaged over IoU 0.5:0.95"),
)
TUNABLE = ("learning_rate", "mini_batch_size", "momentum", "optimizer", "weight_decay")
OBJECTIVE_METRICS = ("validation:mAP",)


def scheduler_steps(text: str) -> list[int]:
    """'10, 20' -> [10, 20]; raises HyperparameterError naming lr_scheduler_step."""
    text = (text or "").strip()
    if not text:
        return []
    steps = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) <= 0:
            raise HyperparameterError(f"hyperparameter 'lr_scheduler_step' = {text!r} is not valid; expected "
                                      "comma-separated positive epoch numbers, e.g. '10, 20'",
                                      name="lr_scheduler_step")
        steps.append(int(part))
    return sorted(steps)


def check(hps: dict) -> None:
    """Rules a single declaration cannot state."""
    scheduler_steps(hps.get("lr_scheduler_step", ""))
    pattern = hps.get("freeze_layer_pattern") or ""
    if pattern:
        try:
            re.compile(pattern)
        except re.error as e:
            raise HyperparameterError(f"hyperparameter 'freeze_layer_pattern' = {pattern!r} is not a regular "
                                      f"expression ({e})", name="freeze_layer_pattern") from None


ALGORITHM = Algorithm(
    name="object-detection",
    title="Object Detection",
    description=("single-shot multibox detector (SSD) with a VGG-16 or ResNet-50 base network: boxes, class ids "
                 "and scores for the objects in an image"),
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=imported_on_call("nbsage.algorithms.object_detection.training", "train"),
    load=imported_on_call("nbsage.algorithms.object_detection.inference", "load"),
    check=check,
    aliases=("object_detection", "objectdetection", "ssd"),
    request_content_type="image/jpeg",
    model_files=("model_algo_1-0000.params",),
    tunable_hyperparameters=TUNABLE,
    objective_metrics=OBJECTIVE_METRICS,
)
