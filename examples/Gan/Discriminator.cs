using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;

namespace Gan;

/// <summary>The discriminator: scores how real an image looks for a digit label, and trains with its own optimizer.
/// The label enters twice: as a one-hot input and as a per-digit projection of the last hidden layer (a projection
/// discriminator), which makes the generator follow the label.</summary>
public sealed class Discriminator : Module
{
    private readonly Dense hidden1, hidden2, output;
    private readonly OptimizerModule opt;
    private readonly int hidden;

    /// <summary>A discriminator; build it as a submodule with <c>Sub("discriminator", () => new Discriminator(options))</c>.</summary>
    /// <param name="options">The widths and the optimizer's settings.</param>
    /// <param name="name">The name of a top-level discriminator; leave it out for a submodule.</param>
    public Discriminator(GanOptions options, string? name = null) : base(name)
    {
        hidden = options.Hidden;
        opt = Sub("opt", () => new OptimizerModule(Optimizers.Adam(options.LearningRate, beta1: options.Beta1)));
        hidden1 = Sub("hidden1", () => new Dense(options.Hidden));
        hidden2 = Sub("hidden2", () => new Dense(options.Hidden));
        output = Sub("output", () => new Dense(1));
    }

    /// <summary>The logits [n] that images [n, 64] are real images of the digits <paramref name="digits"/>.</summary>
    /// <param name="images">The images, pixels in [-1, 1].</param>
    /// <param name="digits">The digits [n].</param>
    /// <returns>The logits.</returns>
    public Tensor Logits(Tensor images, Condition digits)
    {
        var h = nn.functional.leaky_relu(hidden1.Forward(cat([images, digits.OneHot], 1)), 0.2);
        h = nn.functional.leaky_relu(hidden2.Forward(h), 0.2);
        // A state entry created inline on first use: one embedding row per digit.
        var embed = Get("embed", () => (rand([GanOptions.Classes, hidden], generator: Nj.Rng()) * 2 - 1) / Math.Sqrt(hidden));
        return output.Forward(h).squeeze(1) + (h * embed.index_select(0, digits.Digits)).sum(1);
    }

    /// <summary>The discriminator's loss: real images scored as real, generated ones as generated.</summary>
    /// <param name="real">Images from the data set [n, 64].</param>
    /// <param name="fake">Generated images [n, 64].</param>
    /// <param name="digits">The digits of the real images, which the generated ones were asked to show too.</param>
    /// <returns>The mean loss.</returns>
    public Tensor Loss(Tensor real, Tensor fake, Condition digits) =>
        nn.functional.softplus(-Logits(real, digits)).mean() + nn.functional.softplus(Logits(fake, digits)).mean();

    /// <summary>One optimizer step on <see cref="Loss"/>, updating only the discriminator.</summary>
    /// <param name="real">Images from the data set.</param>
    /// <param name="fake">Generated images (detached).</param>
    /// <param name="digits">The digits of both.</param>
    /// <returns>The step's metrics.</returns>
    public StepMetrics Train(Tensor real, Tensor fake, Condition digits) =>
        opt.Minimize(Loss, [hidden1, hidden2, output, $"{Path}/embed"], real, fake, digits);
}
