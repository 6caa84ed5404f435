"""What each of the paper's eight datasets is, and how the authors fed it to the network (SPEC 2).

This is the single source of truth shared by the PIL/DataLoader path (what the authors ran) and the
GPU-resident tensor path (`gradattn.fastdata`): both build their transforms from `Augment`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Augment:
    """The paper's train-time augmentation for one dataset; zero/None means "not used"."""

    hflip: float = 0.0                      # probability of a horizontal flip
    rotate: float = 0.0                     # RandomRotation(degrees)
    translate: float = 0.0                  # RandomAffine(degrees=0, translate=(t, t))
    crop_pad: int = 0                       # RandomCrop(size, padding=crop_pad)
    color_jitter: tuple | None = None       # ColorJitter(brightness, contrast, saturation, hue)
    resized_crop_scale: tuple | None = None  # RandomResizedCrop(size, scale=...)
    order: tuple = ()                       # the authors' step order where it differs from STEPS

    STEPS = ("hflip", "crop_pad", "rotate", "translate", "color_jitter", "resized_crop")

    @property
    def is_identity(self) -> bool:
        return self == Augment()


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    num_classes: int
    class_names: tuple
    image_chans: int          # channels as stored on disk
    in_chans: int             # channels fed to the network (TissueMNIST: 1 repeated to 3)
    native_size: int          # stored side length (PAD-UFES-20: varies, this is the cache size)
    input_size: int           # side length fed to the network in the paper
    mean: tuple
    std: tuple
    augment: Augment
    paper_batch_size: int = 128
    paper_split: str = ""     # how the authors split it (SPEC 2)
    corrected_split: str = ""
    files: str = ""           # canonical files under <data root>/<name>/ (shown when absent)
    license: str = ""
    extra: dict = field(default_factory=dict, compare=False)
    official_counts: dict = field(default_factory=dict, compare=False)  # images per official split


_FMNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_BLOOD = ("basophil", "eosinophil", "erythroblast", "immature granulocyte", "lymphocyte",
          "monocyte", "neutrophil", "platelet")
_TISSUE = ("collecting duct, connecting tubule", "distal convoluted tubule",
           "glomerular endothelial cell", "interstitial endothelial cell", "leukocyte",
           "podocyte", "proximal tubule segment", "thick ascending limb")
_MEDMNIST_AUG = Augment(hflip=0.5, rotate=10.0, color_jitter=(0.1, 0.1, 0.0, 0.0),
                        order=("rotate", "hflip", "color_jitter"))
# Tiny ImageNet class index = position in the sorted wnid list, which is what torchvision's ImageFolder
# (the authors' loader) assigns; wnids.txt lists the same 200 ids in another order.
_TINY_WNIDS = tuple((
    "n01443537 n01629819 n01641577 n01644900 n01698640 n01742172 n01768244 n01770393 n01774384 n01774750 "
    "n01784675 n01855672 n01882714 n01910747 n01917289 n01944390 n01945685 n01950731 n01983481 n01984695 "
    "n02002724 n02056570 n02058221 n02074367 n02085620 n02094433 n02099601 n02099712 n02106662 n02113799 "
    "n02123045 n02123394 n02124075 n02125311 n02129165 n02132136 n02165456 n02190166 n02206856 n02226429 "
    "n02231487 n02233338 n02236044 n02268443 n02279972 n02281406 n02321529 n02364673 n02395406 n02403003 "
    "n02410509 n02415577 n02423022 n02437312 n02480495 n02481823 n02486410 n02504458 n02509815 n02666196 "
    "n02669723 n02699494 n02730930 n02769748 n02788148 n02791270 n02793495 n02795169 n02802426 n02808440 "
    "n02814533 n02814860 n02815834 n02823428 n02837789 n02841315 n02843684 n02883205 n02892201 n02906734 "
    "n02909870 n02917067 n02927161 n02948072 n02950826 n02963159 n02977058 n02988304 n02999410 n03014705 "
    "n03026506 n03042490 n03085013 n03089624 n03100240 n03126707 n03160309 n03179701 n03201208 n03250847 "
    "n03255030 n03355925 n03388043 n03393912 n03400231 n03404251 n03424325 n03444034 n03447447 n03544143 "
    "n03584254 n03599486 n03617480 n03637318 n03649909 n03662601 n03670208 n03706229 n03733131 n03763968 "
    "n03770439 n03796401 n03804744 n03814639 n03837869 n03838899 n03854065 n03891332 n03902125 n03930313 "
    "n03937543 n03970156 n03976657 n03977966 n03980874 n03983396 n03992509 n04008634 n04023962 n04067472 "
    "n04070727 n04074963 n04099969 n04118538 n04133789 n04146614 n04149813 n04179913 n04251144 n04254777 "
    "n04259630 n04265275 n04275548 n04285008 n04311004 n04328186 n04356056 n04366367 n04371430 n04376876 "
    "n04398044 n04399382 n04417672 n04456115 n04465501 n04486054 n04487081 n04501370 n04507155 n04532106 "
    "n04532670 n04540053 n04560804 n04562935 n04596742 n04597913 n06596364 n07579787 n07583066 n07614500 "
    "n07615774 n07695742 n07711569 n07715103 n07720875 n07734744 n07747607 n07749582 n07753592 n07768694 "
    "n07871810 n07873807 n07875152 n07920052 n09193705 n09246464 n09256479 n09332890 n09428293 n12267677 "
).split())
_MERGED = "official train+test merged, re-split 70/15/15 with random_split(seed 42)"

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo(
        "fashionmnist", "Fashion-MNIST", 10, _FMNIST, 1, 1, 28, 28, (0.2860,), (0.3530,),
        Augment(hflip=0.5, rotate=10.0, translate=0.1),
        paper_split=_MERGED, corrected_split="official test kept; val carved from train (stratified)",
        files="train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
              "t10k-labels-idx1-ubyte.gz (or Debian's dataset-fashion-mnist package)",
        license="MIT", official_counts={"train": 60000, "test": 10000}),
    DatasetInfo(
        "cifar10", "CIFAR-10", 10, _CIFAR, 3, 3, 32, 32,
        (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), Augment(hflip=0.5, crop_pad=4),
        paper_split=_MERGED, corrected_split="official test kept; val carved from train (stratified)",
        files="cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) or an ImageFolder tree "
              "train/<class>/*, test/<class>/*",
        license="no formal licence (Krizhevsky 2009; cite the tech report)",
        official_counts={"train": 50000, "test": 10000}),
    DatasetInfo(
        "svhn", "SVHN", 10, tuple(str(i) for i in range(10)), 3, 3, 32, 32,
        (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), Augment(),
        paper_split="train+test+extra merged, re-split 70/15/15 with random_split(seed 42)",
        corrected_split="official test kept; val carved from train (stratified); extra unused",
        files="train_32x32.mat, test_32x32.mat, extra_32x32.mat",
        license="non-commercial use (Netzer et al. 2011)",
        official_counts={"train": 73257, "test": 26032, "extra": 531131}),
    DatasetInfo(
        "bloodmnist", "BloodMNIST", 8, _BLOOD, 3, 3, 28, 64, IMAGENET_MEAN, IMAGENET_STD, _MEDMNIST_AUG,
        paper_split="official MedMNIST splits, 28 px resized to 64",
        corrected_split="official MedMNIST splits", files="bloodmnist.npz (or bloodmnist_64.npz)",
        license="CC BY 4.0", official_counts={"train": 11959, "val": 1712, "test": 3421}),
    DatasetInfo(
        "tissuemnist", "TissueMNIST", 8, _TISSUE, 1, 3, 28, 64, IMAGENET_MEAN, IMAGENET_STD, _MEDMNIST_AUG,
        paper_split="official MedMNIST splits, 28 px resized to 64, gray repeated to 3 channels",
        corrected_split="official MedMNIST splits", files="tissuemnist.npz (or tissuemnist_64.npz)",
        license="CC BY 4.0", official_counts={"train": 165466, "val": 23640, "test": 47280}),
    DatasetInfo(
        "pcam", "PatchCamelyon", 2, ("normal", "tumor"), 3, 3, 96, 96, IMAGENET_MEAN, IMAGENET_STD,
        Augment(), paper_split="official splits", corrected_split="official splits",
        files="camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5", license="CC0",
        official_counts={"train": 262144, "val": 32768, "test": 32768}),
    DatasetInfo(
        "padufes20", "PAD-UFES-20", 6, ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK"), 3, 3, 224, 224,
        IMAGENET_MEAN, IMAGENET_STD,
        Augment(hflip=0.5, rotate=10.0, color_jitter=(0.2, 0.2, 0.2, 0.1), resized_crop_scale=(0.8, 1.0)),
        paper_batch_size=64,
        paper_split="image-level random 70/15/15 (np.random.shuffle, seed 42)",
        corrected_split="patient-level stratified 70/15/15: no patient in two splits",
        files="metadata.csv and the images (imgs_part_1/, imgs_part_2/, imgs_part_3/ or images/)",
        license="CC BY 4.0", official_counts={"all": 2298}),
    DatasetInfo(
        "tinyimagenet", "Tiny ImageNet", 200, _TINY_WNIDS, 3, 3, 64, 64, IMAGENET_MEAN, IMAGENET_STD, Augment(),
        paper_split="official train+val merged, re-split 70/15/15 with random_split(seed 42)",
        corrected_split="official val used as test; val carved from train (stratified)",
        files="tiny-imagenet-200/ (wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
              "val/images/*.JPEG, val/val_annotations.txt)",
        license="ImageNet terms (non-commercial research)",
        official_counts={"train": 100000, "val": 10000}),
]}


def get_info(name: str) -> DatasetInfo:
    """Look a dataset up by name, with an error that lists the valid names."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[key]


def list_datasets() -> list[str]:
    return list(DATASETS)
