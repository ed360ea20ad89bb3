using Ninjax;
using static TorchSharp.torch;

namespace Gan;

/// <summary>The generator's network: noise and a digit label in, an 8x8 image with pixels in [-1, 1] out. Two hidden
/// layers, each batch-normalised; the running statistics of the normalisation are state entries like the weights
/// (buffers: optimizers and gradients leave them out).</summary>
public sealed class GeneratorNet : Module
{
    private readonly Dense hidden1, hidden2, output;
    private readonly BatchNormalization norm1, norm2;

    /// <summary>A generator network; build it as a submodule with <c>Sub("net", () => new GeneratorNet(options))</c>.</summary>
    /// <param name="options">The widths.</param>
    /// <param name="name">The name of a top-level network; leave it out for a submodule.</param>
    public GeneratorNet(GanOptions options, string? name = null) : base(name)
    {
        hidden1 = Sub("hidden1", () => new Dense(options.Hidden));
        norm1 = Sub("norm1", () => new BatchNormalization());
        hidden2 = Sub("hidden2", () => new Dense(options.Hidden));
        norm2 = Sub("norm2", () => new BatchNormalization());
        output = Sub("output", () => new Dense(GanOptions.Pixels));
    }

    /// <summary>Images [n, 64] in [-1, 1] for noise [n, noise size] and the digits [n] they should show. In training
    /// mode the normalisations use the batch's statistics and update their running ones; otherwise they use the running
    /// ones.</summary>
    /// <param name="noise">The noise.</param>
    /// <param name="digits">The digit each image should show.</param>
    /// <param name="training">Training mode.</param>
    /// <returns>The images.</returns>
    public Tensor Forward(Tensor noise, Condition digits, bool training)
    {
        var x = cat([noise, digits.OneHot], 1);
        x = nn.functional.relu(norm1.Forward(hidden1.Forward(x), training));
        x = nn.functional.relu(norm2.Forward(hidden2.Forward(x), training));
        return tanh(output.Forward(x));
    }
}
