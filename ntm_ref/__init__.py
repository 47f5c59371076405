"""ntm_ref: a from-scratch NumPy reference of the Neural Turing Machine (Graves, Wayne & Danihelka 2014).

Every operation is a pure pair ``<op>_forward(...) -> (out, cache)`` / ``<op>_backward(dout, cache)``,
float64, with shapes in one legend: B batch, T time, N memory slots, M word width, R read heads,
W write heads, H heads of one kind, S shift-kernel width, C controller size.

Modules:
    ntm_ref.activations  sigmoid, tanh, softplus, oneplus, softmax, identity, relu, one_plus_relu,
                         hard_sigmoid, clip01 (the head-parameter activations of the public implementations)
    ntm_ref.addressing   cosine_similarity, content, interpolate, shift, sharpen, address (eqs 5-9)
    ntm_ref.memory       read, write (eqs 2-4)
"""
# The submodules are imported by name (from ntm_ref import addressing); importing the package itself loads
# no NumPy, so the ntm-ref command can limit BLAS threads before NumPy starts (see ntm_ref/cli.py).

__version__ = "0.1.0"
