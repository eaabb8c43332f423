"""The demo model's video codec moved to `bridgedit.synthetic.patch_codec` (it serves the synthetic world's demo model
only). This name stays because saved models name it: a WanPipeline's model_index.json records its VAE's module
(`["bridgedit.patch_codec", "PatchVideoCodec"]` in the bundled demo model and every model saved before the move), and
diffusers loads the component from that module, finding its base class (ModelMixin) in the module's namespace too."""

from diffusers.models.modeling_utils import ModelMixin

from .synthetic.patch_codec import PatchVideoCodec

__all__ = ["ModelMixin", "PatchVideoCodec"]
