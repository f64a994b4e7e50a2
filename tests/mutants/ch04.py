"""Wrong answers for chapter 04's checks (batch-norm backward, RMSprop, the evaluation bug, diagnosing runs)."""

import torch

from mmcourse.grading.ch04 import DIAGNOSES

from . import Mutant

# --- 04.batchnorm_backward ------------------------------------------------------------------------------


def bn_backward(x, gamma, grad_out, eps=1e-5):
    mu, var = x.mean(0), x.var(0, unbiased=False)
    std = torch.sqrt(var + eps)
    xhat = (x - mu) / std
    dx = gamma / std * (grad_out - grad_out.mean(0) - xhat * (grad_out * xhat).mean(0))
    return dx, (grad_out * xhat).sum(0), grad_out.sum(0)


def bn_backward_no_batch_terms(x, gamma, grad_out, eps=1e-5):
    dx, dgamma, dbeta = bn_backward(x, gamma, grad_out, eps)
    return grad_out * gamma / torch.sqrt(x.var(0, unbiased=False) + eps), dgamma, dbeta


def bn_backward_unbiased_var(x, gamma, grad_out, eps=1e-5):
    mu, var = x.mean(0), x.var(0, unbiased=True)
    std = torch.sqrt(var + eps)
    xhat = (x - mu) / std
    dx = gamma / std * (grad_out - grad_out.mean(0) - xhat * (grad_out * xhat).mean(0))
    return dx, (grad_out * xhat).sum(0), grad_out.sum(0)


def bn_backward_dgamma_raw_x(x, gamma, grad_out, eps=1e-5):
    dx, _, dbeta = bn_backward(x, gamma, grad_out, eps)
    return dx, (grad_out * x).sum(0), dbeta


def bn_backward_mean_not_sum(x, gamma, grad_out, eps=1e-5):
    dx, dgamma, dbeta = bn_backward(x, gamma, grad_out, eps)
    return dx, dgamma / len(x), dbeta / len(x)


# --- 04.rmsprop ---------------------------------------------------------------------------------------------


def rmsprop(p, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    grad = grad + weight_decay * p
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    return p - lr * grad / (square_avg.sqrt() + eps), square_avg


def rmsprop_eps_inside(p, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    grad = grad + weight_decay * p
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    return p - lr * grad / (square_avg + eps).sqrt(), square_avg


def rmsprop_no_one_minus_alpha(p, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    grad = grad + weight_decay * p
    square_avg = alpha * square_avg + grad * grad
    return p - lr * grad / (square_avg.sqrt() + eps), square_avg


def rmsprop_bias_corrected(p, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    grad = grad + weight_decay * p
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    return p - lr * grad / ((square_avg / (1 - alpha)).sqrt() + eps), square_avg  # Adam's correction, once


def rmsprop_ignores_weight_decay(p, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    return rmsprop(p, grad, square_avg, lr, alpha, eps, 0.0)


def rmsprop_decoupled_decay(p, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    p = p * (1 - lr * weight_decay)
    return rmsprop(p, grad, square_avg, lr, alpha, eps, 0.0)


# --- 04.eval_accuracy -------------------------------------------------------------------------------------


def acc_buggy(model, x, y, batch_size=64):  # the notebook's bug: no eval(), no no_grad()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    return correct / len(y)


def acc_right(model, x, y, batch_size=64):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return acc_buggy(model, x, y, batch_size)
    finally:
        model.train(was_training)


def acc_no_restore(model, x, y, batch_size=64):
    model.eval()
    with torch.no_grad():
        return acc_buggy(model, x, y, batch_size)


def acc_always_train_after(model, x, y, batch_size=64):
    model.eval()
    with torch.no_grad():
        out = acc_buggy(model, x, y, batch_size)
    model.train()
    return out


def acc_no_grad_only(model, x, y, batch_size=64):
    with torch.no_grad():
        return acc_buggy(model, x, y, batch_size)


def acc_eval_but_grad(model, x, y, batch_size=64):
    was_training = model.training
    model.eval()
    out = acc_buggy(model, x, y, batch_size)
    model.train(was_training)
    return out


def acc_tensor(model, x, y, batch_size=64):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = (model(x).argmax(1) == y).float().sum()  # forgets to divide by N
    model.train(was_training)
    return out


# --- 04.diagnose ----------------------------------------------------------------------------------------------


def diagnoses_right():
    return dict(DIAGNOSES)


def diagnoses_all_ok():
    return {k: "ok" for k in DIAGNOSES}


def diagnoses_two_swapped():
    d = dict(DIAGNOSES)
    d[1], d[3] = d[3], d[1]
    return d


def diagnoses_made_up_word():
    return {**DIAGNOSES, 2: "fine"}


def bn_backward_autograd(x, gamma, grad_out, eps=1e-5):  # right values, but autograd does the work
    with torch.enable_grad():
        xr, gr = x.clone().requires_grad_(), gamma.clone().requires_grad_()
        br = torch.zeros_like(gamma, requires_grad=True)
        out = torch.nn.functional.batch_norm(xr, None, None, gr, br, training=True, eps=eps)
        dx, dgamma, dbeta = torch.autograd.grad(out, (xr, gr, br), grad_out)
    return dx, dgamma, dbeta


MUTANTS = {
    "04.batchnorm_backward": {"dx without the batch terms": bn_backward_no_batch_terms,
                              "unbiased variance": bn_backward_unbiased_var,
                              "dgamma from x, not x-hat": bn_backward_dgamma_raw_x,
                              "means instead of sums": bn_backward_mean_not_sum,
                              "autograd": Mutant(bn_backward_autograd, "calls")},
    "04.rmsprop": {"eps inside the square root": rmsprop_eps_inside,
                   "no (1 - alpha)": rmsprop_no_one_minus_alpha,
                   "a bias correction": rmsprop_bias_corrected,
                   "ignores weight decay": rmsprop_ignores_weight_decay,
                   "decoupled weight decay": rmsprop_decoupled_decay},
    "04.eval_accuracy": {"the bug itself": acc_buggy, "leaves the model in eval mode": acc_no_restore,
                         "always back to train mode": acc_always_train_after,
                         "no_grad without eval": acc_no_grad_only, "eval without no_grad": acc_eval_but_grad,
                         "a count, not an accuracy": acc_tensor},
    "04.diagnose": {"everything is fine": diagnoses_all_ok, "two runs swapped": diagnoses_two_swapped,
                    "an unknown defect name": diagnoses_made_up_word},
}
