"""The names `bridgedit evaluate` shows in its help, kept where no backbone is imported: the metrics (§4.1), the
backbone each loads by default, and the folder of converted weights (I3D, VGGish, ImageBind)."""

from pathlib import Path

METRICS = ("fvd", "kvd", "fad", "kl", "clipsim", "clap", "ib_va", "av_align")
CLIP_DEFAULT = "openai/clip-vit-base-patch32"
CLAP_DEFAULT = "laion/clap-htsat-unfused"
AUDIOSET_CLASSIFIER_DEFAULT = "MIT/ast-finetuned-audioset-10-10-0.4593"
WEIGHTS_DIR = Path("~/.cache/bridgedit/weights").expanduser()  # where converted I3D / VGGish / ImageBind weights are
