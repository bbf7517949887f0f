"""FuxiCTR's DCNv2 (tools/bench/exfm_fuxictr.py) against zoo's CTRNetwork("dcnv2"): same logits, same Adam step."""

import pytest

pytest.importorskip("fuxictr")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tests.scripts import load_script  # noqa: E402
from zoo.exfm.model import CTRNetwork  # noqa: E402

fx = load_script("tools/bench/exfm_fuxictr.py")

SIZES = [7, 5, 11]
CFG = {"dim": 4, "cross": 2, "hidden": [8, 4], "lr": 1e-2, "batch": 64}


def _random_ids(n, generator):
    return torch.stack([torch.randint(0, s, (n,), generator=generator) for s in SIZES], dim=1)


def _twins():
    torch.manual_seed(0)
    zoo_net = CTRNetwork(SIZES, "dcnv2", CFG["dim"], CFG["cross"], CFG["hidden"])
    with torch.no_grad():  # random non-trivial weights everywhere (zoo's init has tiny embeddings)
        for p in zoo_net.parameters():
            p.normal_(0, 0.5)
        zoo_net.embedding.bias.weight.zero_()  # FuxiCTR's DCNv2 has no first-order term
    fuxi = fx.build_dcnv2(SIZES, CFG)
    skipped = fx.copy_from_zoo(fuxi, zoo_net)
    assert skipped == ["embedding.bias.weight"]
    return zoo_net, fuxi


def test_fuxictr_twin_logits_equal_zoo():
    zoo_net, fuxi = _twins()
    ids = _random_ids(256, torch.Generator().manual_seed(1))
    torch.testing.assert_close(fx.logits(fuxi, ids), zoo_net(ids), atol=1e-5, rtol=0)
    # and the FuxiCTR forward (what fit / predict use) is the sigmoid of it
    probs = fuxi({name: ids[:, j].double() for j, name in enumerate(fuxi.feature_map.features)})["y_pred"].squeeze(-1)
    torch.testing.assert_close(probs, torch.sigmoid(zoo_net(ids)), atol=1e-6, rtol=0)


def test_fuxictr_twin_first_order_is_the_difference():
    zoo_net, fuxi = _twins()
    with torch.no_grad():
        zoo_net.embedding.bias.weight.normal_()
    ids = _random_ids(32, torch.Generator().manual_seed(2))
    _, first_order = zoo_net.representation(ids)
    torch.testing.assert_close(fx.logits(fuxi, ids) + first_order, zoo_net(ids), atol=1e-5, rtol=0)


def test_fuxictr_twin_adam_step_keeps_equality():
    zoo_net, fuxi = _twins()
    generator = torch.Generator().manual_seed(3)
    ids = _random_ids(128, generator)
    labels = torch.randint(0, 2, (128,), generator=generator).float()
    zoo_opt = torch.optim.Adam(zoo_net.parameters(), lr=CFG["lr"])
    fuxi.optimizer.zero_grad()  # FuxiCTR's own optimizer (compile("adam", ..., lr))
    assert isinstance(fuxi.optimizer, torch.optim.Adam) and fuxi.optimizer.param_groups[0]["lr"] == CFG["lr"]
    F.binary_cross_entropy_with_logits(fx.logits(fuxi, ids), labels).backward()
    fuxi.optimizer.step()
    zoo_opt.zero_grad()
    F.binary_cross_entropy_with_logits(zoo_net(ids), labels).backward()
    zoo_opt.step()
    assert zoo_net.embedding.bias.weight.abs().max() > 0  # zoo's first-order term trained; compare without it
    with torch.no_grad():
        zoo_net.embedding.bias.weight.zero_()
    after = _random_ids(256, generator)
    torch.testing.assert_close(fx.logits(fuxi, after), zoo_net(after), atol=1e-5, rtol=0)
    table = zoo_net.embedding.table.weight
    for j, layer in enumerate(fuxi.embedding_layer.embedding_layer.embedding_layers.values()):
        offset = int(zoo_net.embedding.offsets[j])
        torch.testing.assert_close(layer.weight, table[offset:offset + SIZES[j]], atol=1e-6, rtol=0)


def test_fuxictr_end_to_end_tiny(tmp_path):
    from zoo.exfm.data import make_synthetic_stream, write_arrow_stream

    path = write_arrow_stream(make_synthetic_stream(6000, 3, 0.0, 0, users_active=50, items_active=40), tmp_path / "s.arrow")
    result = fx.end_to_end(str(path), {"dim": 4, "cross": 1, "hidden": [16, 8], "lr": 1e-2, "batch": 256}, 1,
                           str(tmp_path / "work"))
    assert result["framework"] == "fuxictr"
    assert result["train_rows"] + result["test_rows"] == 6000 and result["test_rows"] > 0
    assert 0.5 < result["test_auc"] <= 1
    assert result["test_logloss"] > 0 and result["train_s"] > 0 and result["score_s"] > 0
