"""Cells on disk and how training sees them: labelled folders and hema's fixed split, lab class mappings, seeded
augmented datasets, data order, augmentations and the eval transform."""

from hema.train.data.folders import SPLITS, LabelledImages, find_labelled_images, find_unlabelled_images, split_of

__all__ = ["LabelledImages", "SPLITS", "find_labelled_images", "find_unlabelled_images", "split_of"]
