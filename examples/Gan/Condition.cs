using static TorchSharp.torch;

namespace Gan;

/// <summary>The digits a batch is conditioned on, in the two forms the networks read: the labels (for the
/// discriminator's per-digit projection) and their one-hot rows (an input of both networks), made once per batch and
/// shared by every forward pass of a training step.</summary>
/// <param name="Digits">The digits [n], int64.</param>
/// <param name="OneHot">The same digits as one-hot float32 rows [n, 10].</param>
public readonly record struct Condition(Tensor Digits, Tensor OneHot)
{
    /// <summary>The condition for the digits <paramref name="labels"/>.</summary>
    /// <param name="labels">The digits [n], int64.</param>
    /// <returns>The labels with their one-hot rows.</returns>
    public static Condition Of(Tensor labels) => new(labels, Labels.OneHot(labels));
}
