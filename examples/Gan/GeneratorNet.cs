using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;
using BatchNorm1d = TorchSharp.Modules.BatchNorm1d;

namespace Gan;

/// <summary>The generator's network: noise and a digit label in, an 8x8 image with pixels in [-1, 1] out. Two hidden
/// layers, each batch-normalised; the BatchNorm's running statistics are state entries like the weights.</summary>
public sealed class GeneratorNet : Module
{
    private readonly Dense hidden1, hidden2, output;
    private readonly TorchModule<BatchNorm1d> norm1, norm2;

    /// <summary>A generator network; build it as a submodule with <c>Sub("net", () => new GeneratorNet(options))</c>.</summary>
    /// <param name="options">The widths.</param>
    /// <param name="name">The name of a top-level network; leave it out for a submodule.</param>
    public GeneratorNet(GanOptions options, string? name = null) : base(name)
    {
        hidden1 = Sub("hidden1", () => new Dense(options.Hidden));
        norm1 = Sub("norm1", () => new TorchModule<BatchNorm1d>(() => nn.BatchNorm1d(options.Hidden)));
        hidden2 = Sub("hidden2", () => new Dense(options.Hidden));
        norm2 = Sub("norm2", () => new TorchModule<BatchNorm1d>(() => nn.BatchNorm1d(options.Hidden)));
        output = Sub("output", () => new Dense(GanOptions.Pixels));
    }

    /// <summary>Images [n, 64] in [-1, 1] for noise [n, noise size] and labels [n]. In training mode the
    /// BatchNorms normalise with the batch's statistics and update their running ones; otherwise they use the running
    /// ones.</summary>
    /// <param name="noise">The noise.</param>
    /// <param name="labels">The digit each image should show.</param>
    /// <param name="training">Training mode.</param>
    /// <returns>The images.</returns>
    public Tensor Forward(Tensor noise, Tensor labels, bool training)
    {
        var x = cat([noise, Labels.OneHot(labels)], 1);
        x = nn.functional.relu(norm1.Forward(hidden1.Forward(x), training));
        x = nn.functional.relu(norm2.Forward(hidden2.Forward(x), training));
        return tanh(output.Forward(x));
    }

    /// <summary>What the generator's optimizer updates: the dense layers and the BatchNorms' scales and offsets (not
    /// their running statistics, which are no parameters).</summary>
    public object[] Parameters => [hidden1, hidden2, output, .. norm1.ParameterTargets, .. norm2.ParameterTargets];
}
