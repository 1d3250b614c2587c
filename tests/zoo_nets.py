"""The zoo nets the whole-net tests run: name -> (prototxt file, input shape override or None).
Batch 1 everywhere; heavy nets run under the `slow` marker."""

ZOO_NETS = {
    "lenet": ("deploy.prototxt", None),
    "cifar10_quick": ("deploy.prototxt", None),
    "cifar10_full": ("deploy.prototxt", None),
    "bvlc_reference_caffenet": ("deploy.prototxt", None),
    "bvlc_alexnet": ("deploy.prototxt", None),
    "bvlc_googlenet": ("deploy.prototxt", None),
    "squeezenet_v1_0": ("deploy.prototxt", None),
    "mobilenet_v1": ("deploy.prototxt", None),
    "resnet50": ("deploy.prototxt", None),
    "resnet50_stem_test": ("deploy.prototxt", None),
    "open_nsfw": ("deploy.prototxt", None),
    "mtcnn_det1": ("deploy.prototxt", (1, 3, 36, 52)),   # fully convolutional: any H x W
    "mtcnn_det2": ("deploy.prototxt", None),
    "ultraface_slim320": ("deploy.prototxt", None),
    "legacy_v0_lenet": ("deploy.prototxt", None),
    "legacy_v1_caffenet": ("deploy.prototxt", None),
    "mobilenet_ssd": ("deploy.prototxt", None),
}
# The other legacy forms (their equivalence with the modern nets is tests/test_legacy.py's).
MORE_LEGACY = {
    "legacy_v0_caffenet_padding": ("deploy.prototxt", None),
    "legacy_v1_lenet": ("deploy.prototxt", None),
    "legacy_v1_cifar10_quick": ("deploy.prototxt", None),
}
SLOW_NETS = {
    "vgg16": ("deploy.prototxt", None),
    "fcn8s_voc": ("deploy.prototxt", (1, 3, 128, 128)),    # reduced from 500 x 500
    "fcn32s_voc": ("val.prototxt", (1, 3, 224, 224)),     # a Python data layer: --input needed
    "ssd300_vgg16_voc0712": ("deploy.prototxt", None),
}
