"""Object Detection: SageMaker's single-shot multibox detector (SSD), in PyTorch.

`declaration` says what the algorithm accepts; `records` reads and checks the three training
inputs (RecordIO image lists, images with JSON annotations, augmented manifests); `boxes` holds
default boxes, box coding, matching and NMS; `network` the VGG-16 / ResNet-50 SSD and its loss;
`augment` SSD's data augmentation; `evaluation` VOC07 and COCO-style mAP; `training` the job;
`detector` the trained model and its files; `inference` the endpoint; `sample_data` generated
images with exact boxes. Only the declaration is imported here (torch loads when a job or model
needs it).

Where nbsage's Object Detection differs from SageMaker's, on purpose:

* No ImageNet weights can be downloaded: `use_pretrained_model=1` trains from scratch (one log
  line says so) unless the `model` channel holds a weights file or a previous model; because of
  that, every convolution is followed by batch normalisation (ScratchDet/DSOD: SSD needs it to
  train without pretraining).
* The model directory holds torch weights named `model_algo_1-0000.params` and `hyperparams.json`;
  MXNet's `model_algo_1-symbol.json` is not written. The endpoint answers on CPU, as SageMaker's.
* nbsage additions, `_`-prefixed and advanced: `_network_width`, `_small_image_shape`,
  `_augmentation` and `_seed` (see the declaration) let tests and CPU demos run in seconds.
* `kv_store` is accepted; several instances always average gradients every step (dist_sync)
  with torch.distributed, each host taking mini_batch_size images of its share per step (the
  job's batch is mini_batch_size x hosts, as SageMaker's doc says of dist_sync).
* A `.lst` with its images in the train channel, an augmented manifest in File mode and annotation
  files beside the images (no `train_annotation` channel) are read too.
"""
from nbsage.algorithms.object_detection.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
