"""A Kadi-shaped storage tree for the copier's before/after runs (bench/copier/ab.sh):
N files in the uuid layout (ab/cd/ef/<uuid>), log-normal sizes (median ~3 KB, some up to 400 KB),
the same for the same N and seed.

Usage: python3 tree.py ROOT N [SEED]"""
import os
import random
import sys
import uuid

root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 19)
for _ in range(n):
    u = uuid.UUID(int=rnd.getrandbits(128)).hex
    d = os.path.join(root, u[:2], u[2:4], u[4:6])
    os.makedirs(d, exist_ok=True)
    size = int(rnd.lognormvariate(8, 1.5)) % 400000
    with open(os.path.join(d, u), 'wb') as f:
        f.write(rnd.randbytes(size) if size < 65536 else os.urandom(size))
