import pytest
import torch
from torch import nn

from pyro_sr.models.cnn import CNNConfig, ResidualSR, SeedCNN, build_cnn, load_deepened


@pytest.mark.parametrize("arch", ["seed", "resnet"])
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_any_image_size_is_upscaled_by_the_scale(arch, scale):
    model = build_cnn(CNNConfig(arch=arch, scale=scale, channels=8, blocks=2))
    for h, w in [(5, 7), (8, 8), (1, 3)]:
        assert model(torch.rand(2, 3, h, w)).shape == (2, 3, h * scale, w * scale)


def test_seed_cnn_is_the_papers_network():
    layers = list(SeedCNN(CNNConfig(arch="seed")).net)
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in layers if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 64, 3), (64, 64, 5), (64, 128, 5), (128, 64, 5), (64, 3, 5)]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == [
        "Conv2d",
        "ReLU",
        "BicubicUpsample",
        "ReLU",
        "Conv2d",
        "ReLU",
        "BicubicUpsample",
        "ReLU",
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
    ]
    assert all(m.mode == "bicubic" and m.scale_factor == 2 for m in layers if isinstance(m, nn.Upsample))


def test_residual_cnn_starts_close_to_bicubic():
    model = ResidualSR(CNNConfig(channels=16, blocks=4))
    with torch.no_grad():
        nn.init.zeros_(model.tail.weight)
        nn.init.zeros_(model.tail.bias)
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(model(lr), nn.functional.interpolate(lr, scale_factor=4, mode="bicubic"))


def test_deepening_keeps_the_function_and_trains_the_new_blocks():
    torch.manual_seed(0)
    trained = ResidualSR(CNNConfig(channels=8, blocks=2))
    with torch.no_grad():
        for weight in trained.parameters():
            weight.add_(0.1 * torch.randn_like(weight))  # no block is near the identity
    deeper = ResidualSR(CNNConfig(channels=8, blocks=5))
    load_deepened(deeper, trained.state_dict())
    lr = torch.rand(2, 3, 6, 7)
    torch.testing.assert_close(deeper(lr), trained(lr))
    assert torch.equal(deeper.body[0].conv1.weight, trained.body[0].conv1.weight)  # trained blocks at slots 0, 2
    assert torch.equal(deeper.body[2].conv2.weight, trained.body[1].conv2.weight)
    assert torch.equal(deeper.body[5].weight, trained.body[2].weight)  # the closing conv stays last
    new = [deeper.body[i] for i in (1, 3, 4)]
    assert all(not block.conv2.weight.any() and block.conv1.weight.any() for block in new)
    ((deeper(lr) - torch.rand(2, 3, 24, 28)) ** 2).mean().backward()
    assert all(block.conv2.weight.grad.abs().sum() > 0 for block in new)  # identity blocks can start learning


def test_deepening_refuses_fewer_blocks_and_other_networks():
    two_blocks = ResidualSR(CNNConfig(channels=8, blocks=2))
    with pytest.raises(ValueError, match="cannot deepen a network of 3 residual blocks into one of 2"):
        load_deepened(two_blocks, ResidualSR(CNNConfig(channels=8, blocks=3)).state_dict())
    with pytest.raises(ValueError, match="weights do not fit a deeper resnet"):
        load_deepened(two_blocks, SeedCNN(CNNConfig(arch="seed")).state_dict())


def test_config_rejects_unknown_arch_and_scale():
    with pytest.raises(ValueError, match="architecture"):
        CNNConfig(arch="unet")
    with pytest.raises(ValueError, match="scale"):
        CNNConfig(scale=3)
    with pytest.raises(ValueError, match="at least 1 channel"):
        CNNConfig(channels=0)
    with pytest.raises(ValueError, match="0 or more blocks"):
        CNNConfig(blocks=-1)
