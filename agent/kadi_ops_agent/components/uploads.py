"""MISC_UPLOADS_PATH: uploads that are not record files, e.g. profile images (see trees.py)."""
from .trees import Tree

NAME = 'uploads'
_tree = Tree('uploads', 'uploads_path', 'MISC_UPLOADS_PATH')
space_needed_kb, backup_begin, backup_wait, backup_finish = _tree.space_needed_kb, _tree.backup_begin, _tree.backup_wait, _tree.backup_finish
verify_quick, restore, probe, restore_step = _tree.verify_quick, _tree.restore, _tree.probe, _tree.restore_step
backup_check, restore_check, inodes_needed, space_walks = _tree.backup_check, _tree.restore_check, _tree.inodes_needed, _tree.space_walks
