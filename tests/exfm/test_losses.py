"""Networks and ExFM losses: DCNv2 / DeepFM closed forms, gradient scaling beta, AH isolation, SA stop-gradient."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from zoo.exfm.distillation import adapter_step, student_loss
from zoo.exfm.model import CTRNetwork, FusedEmbedding, StudentAdapter, gradient_scale

SIZES = [5, 3, 4]


def network(architecture="dcnv2", heads=("serving", "auxiliary", "adapter"), seed=0):
    torch.manual_seed(seed)
    net = CTRNetwork(SIZES, architecture, embedding_dim=3, cross_layers=2, hidden=(6,), heads=heads).double()
    for p in net.parameters():  # non-trivial values everywhere (embeddings start near 0, biases at 0)
        torch.nn.init.normal_(p, std=0.5)
    return net


def batch(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, s, (n,), generator=g) for s in SIZES], dim=1)
    labels = torch.randint(0, 2, (n,), generator=g).double()
    return ids, labels, torch.randn(n, generator=g, dtype=torch.float64) * 2


def grads(module):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in module.named_parameters()}


def test_fused_embedding_uses_per_field_offsets():
    emb = FusedEmbedding(SIZES, 2)
    ids = torch.tensor([[4, 0, 3]])
    rows = emb.table.weight[torch.tensor([4, 5 + 0, 5 + 3 + 3])]
    assert torch.equal(emb(ids)[0][0], rows)


def test_deepfm_interaction_is_the_pairwise_sum():
    net = network("deepfm")
    ids, _, _ = batch()
    embedded, _ = net.embedding(ids)
    pairwise = sum(embedded[:, i] * embedded[:, j] for i, j in itertools.combinations(range(len(SIZES)), 2))
    h, _ = net.representation(ids)
    torch.testing.assert_close(h[:, :3], pairwise, rtol=1e-12, atol=1e-12)



def test_deepfm_interaction_enters_each_head_through_learned_weights():
    """The documented DeepFM logit: w_v . v + w_m . MLP(x_0) + b + first order, w_v learned per head; the published
    DeepFM (FM term summed unweighted) is the special case w_v = 1, not what a trained head holds."""
    net = network("deepfm")
    ids, _, _ = batch()
    embedded, first_order = net.embedding(ids)
    v = sum(embedded[:, i] * embedded[:, j] for i, j in itertools.combinations(range(len(SIZES)), 2))
    deep = net.mlp(embedded.flatten(1))
    for name, head in net.heads.items():
        w_v, w_m = head.weight[0, :3], head.weight[0, 3:]
        assert not torch.allclose(w_v, torch.ones_like(w_v))  # learned weights, not a fixed sum
        expected = v @ w_v + deep @ w_m + head.bias + first_order
        torch.testing.assert_close(net(ids, name), expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # w_v = 1 gives the published model: the FM term summed unweighted
        net.heads["serving"].weight[0, :3] = 1.0
    published = v.sum(1) + deep @ net.heads["serving"].weight[0, 3:] + net.heads["serving"].bias + first_order
    torch.testing.assert_close(net(ids), published, rtol=1e-12, atol=1e-12)

def test_dcnv2_cross_layers_follow_equation_1():
    net = network("dcnv2")
    ids, _, _ = batch()
    x0 = net.embedding(ids)[0].flatten(1)
    x = x0
    for layer in net.cross:
        x = x0 * (x @ layer.weight.T + layer.bias) + x
    h, _ = net.representation(ids)
    torch.testing.assert_close(h[:, : x0.shape[1]], x, rtol=1e-12, atol=1e-12)


def test_gradient_scale_is_identity_forward_and_beta_backward():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = gradient_scale(x, 3.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 3.5))
    torch.autograd.gradcheck(lambda v: gradient_scale(v, 1.0) ** 2, (torch.randn(4, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize("mode", ["auxiliary_head", "auxiliary_head_adapter"])
def test_beta_scales_the_distillation_gradient_into_the_backbone(mode):
    ids, labels, fm = batch()
    target = torch.sigmoid(fm * 0.3)
    backbone = {}
    for beta in (1.0, 2.5):
        net = network()
        both, _ = student_loss(net, ids, labels, distillation=mode, foundation_logit=fm, adapter_target=target, gradient_scale_beta=beta)
        serving_only, _ = student_loss(net, ids, labels, distillation="none")
        both.backward()
        g_both = grads(net)
        net.zero_grad()
        serving_only.backward()
        g_serving = grads(net)
        # gradient of the distillation terms alone, on backbone parameters (not the heads)
        backbone[beta] = {n: g_both[n] - g_serving[n] for n in g_both if not n.startswith("heads.")}
    for name, g in backbone[1.0].items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(backbone[2.5][name], 2.5 * g, rtol=1e-10, atol=1e-12)


def test_auxiliary_head_keeps_the_fm_label_out_of_the_serving_head():
    ids, labels, fm = batch()
    serving = []
    for fm_logit in (fm, -3 * fm + 1):
        net = network()
        loss, parts = student_loss(net, ids, labels, distillation="auxiliary_head", foundation_logit=fm_logit, label_scale=2.0, loss_weight=3.0, gradient_scale_beta=4.0)
        loss.backward()
        serving.append(grads(net.heads["serving"]))
        assert "auxiliary" in parts
    net = network()
    student_loss(net, ids, labels, distillation="none")[0].backward()
    label_only = grads(net.heads["serving"])
    for name in label_only:
        torch.testing.assert_close(serving[0][name], label_only[name], rtol=0, atol=0)
        torch.testing.assert_close(serving[1][name], label_only[name], rtol=0, atol=0)
    # whereas plain distillation puts the FM label on the serving head
    net = network()
    student_loss(net, ids, labels, distillation="plain", foundation_logit=fm)[0].backward()
    assert not torch.equal(grads(net.heads["serving"])["weight"], label_only["weight"])


def test_auxiliary_loss_uses_clipped_label_scaling():
    ids, labels, fm = batch()
    net = network()
    alpha, w = 3.0, 0.7
    loss, _ = student_loss(net, ids, labels, distillation="auxiliary_head", foundation_logit=fm, label_scale=alpha, loss_weight=w)
    h, first = net.representation(ids)
    serving = net.heads["serving"](h).squeeze(-1) + first
    auxiliary = net.heads["auxiliary"](h).squeeze(-1) + first
    target = torch.minimum(alpha * torch.sigmoid(fm), torch.ones_like(fm))
    expected = F.binary_cross_entropy_with_logits(serving, labels) + w * F.binary_cross_entropy_with_logits(auxiliary, target)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    assert (target == 1).any() and (target < 1).any()  # the clip is exercised


def test_student_adapter_gets_no_gradient_from_the_vm_loss():
    ids, labels, fm = batch()
    net, adapter = network(), StudentAdapter(4).double()
    optimizer = torch.optim.SGD(adapter.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    target, _ = adapter_step(adapter, optimizer, fm, labels)
    after = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    assert any(not torch.equal(before[n], after[n]) for n in before)  # trained on the fresh labels
    assert not target.requires_grad
    adapter.zero_grad(set_to_none=True)
    loss, _ = student_loss(net, ids, labels, distillation="auxiliary_head_adapter", foundation_logit=fm, adapter_target=target)
    loss.backward()
    assert all(p.grad is None for p in adapter.parameters())
    assert net.heads["adapter"].weight.grad is not None


def test_a_fresh_adapter_is_the_identity():
    adapter = StudentAdapter(8).double()
    z = torch.linspace(-5, 5, 11, dtype=torch.float64)
    torch.testing.assert_close(adapter(z), z)
    torch.testing.assert_close(adapter(torch.tensor([40.0], dtype=torch.float64)), torch.tensor([15.0], dtype=torch.float64))


def test_unknown_mode_and_missing_adapter_target_raise():
    ids, labels, fm = batch()
    with pytest.raises(ValueError, match="distillation must be"):
        student_loss(network(), ids, labels, distillation="cotrain", foundation_logit=fm)
    with pytest.raises(ValueError, match="needs adapter_target"):
        student_loss(network(), ids, labels, distillation="auxiliary_head_adapter", foundation_logit=fm)
    with pytest.raises(ValueError, match="architecture"):
        CTRNetwork(SIZES, "widedeep", 3, 1, (4,))
