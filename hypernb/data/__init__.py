"""Datasets for the study: MNIST, CIFAR-10 (full or the labelled subset), War and Peace, Tiny
Shakespeare; verified, loaded once onto the training device, and batched there."""
from .files import ENV_VAR, DataError, data_root, no_empty_folders_left
from .loader import DeviceLoader, cifar_augment, epoch_generator
from .text import CORPORA, CharCorpus, bits, load_corpus, windows
from .vision import CIFAR_MEAN, CIFAR_STD, available, load_cifar10, load_cifar10_subset, load_images, load_mnist

__all__ = [
    "ENV_VAR", "DataError", "data_root", "no_empty_folders_left", "DeviceLoader", "cifar_augment", "epoch_generator", "CORPORA",
    "CharCorpus", "bits", "load_corpus", "windows", "CIFAR_MEAN", "CIFAR_STD", "available", "load_cifar10",
    "load_cifar10_subset", "load_images", "load_mnist",
]
