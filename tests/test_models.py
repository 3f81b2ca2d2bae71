import torch

from hypernb.models import MLP, CharLSTM, ResNet20, count_parameters


def test_resnet20_is_he_et_al_option_a():
    model = ResNet20()
    assert count_parameters(model) == 269_722  # 0.27 M: option-A shortcuts add no parameters
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 19  # + 1 linear = 20 layers
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_mlp_is_784_128_10_tanh():
    model = MLP()
    assert count_parameters(model) == 784 * 128 + 128 + 128 * 10 + 10
    assert model.act is torch.tanh and MLP(activation="relu").act is not torch.tanh
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_char_lstm_shapes():
    model = CharLSTM(vocab=82)
    assert model.lstm.num_layers == 2 and model.lstm.hidden_size == 128
    assert model(torch.randint(0, 82, (4, 17))).shape == (4, 17, 82)
