"""One small, fixed training configuration on the test double, shared by the resume tests and
the subprocess they kill (python tests/trainer_run.py DATA OUT)."""
import sys

from trainer_double import SoftmaxRegression, processor
from visionc.trainer import Trainer

IMAGE = 8
CONFIG = dict(epochs=3, batch_size=4, lr=0.01, checkpoint_every=3, keep_checkpoints=20, seed=7, progress=False)


def make_trainer(data, out, **overrides):
    model = SoftmaxRegression(3, 3 * IMAGE * IMAGE, seed=1)
    return Trainer(model, train_dir=data, output_dir=out, processor=processor(IMAGE), **{**CONFIG, **overrides})


if __name__ == "__main__":
    make_trainer(sys.argv[1], sys.argv[2]).train()
