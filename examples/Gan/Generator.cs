using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;

namespace Gan;

/// <summary>The generator: its network and its own optimizer. Its <see cref="Train"/> takes one step on the
/// non-saturating GAN loss, which goes through the discriminator; the step updates only the generator.</summary>
public sealed class Generator : Module
{
    private readonly OptimizerModule opt;

    /// <summary>A generator; build it as a submodule with <c>Sub("generator", () => new Generator(options))</c>.</summary>
    /// <param name="options">The widths and the optimizer's settings.</param>
    /// <param name="name">The name of a top-level generator; leave it out for a submodule.</param>
    public Generator(GanOptions options, string? name = null) : base(name)
    {
        Net = Sub("net", () => new GeneratorNet(options));
        opt = Sub("opt", () => new OptimizerModule(Optimizers.Adam(options.LearningRate, beta1: options.Beta1)));
    }

    /// <summary>The network (its entries live under <c>Path/net</c>, the optimizer's under <c>Path/opt</c>).</summary>
    public GeneratorNet Net { get; }

    /// <summary>One optimizer step that makes the <paramref name="critic"/> score the generated images as real. The
    /// optimizer's target is the generator's network (its parameters; the normalisations' running statistics are
    /// buffers, which the step writes but does not differentiate): the discriminator is read, never written.</summary>
    /// <param name="noise">Noise [n, noise size].</param>
    /// <param name="digits">The digits to generate [n].</param>
    /// <param name="critic">The discriminator that scores the images.</param>
    /// <returns>The step's metrics and the generated images (detached), for the discriminator's step.</returns>
    public (StepMetrics Metrics, Tensor Fake) Train(Tensor noise, Condition digits, Discriminator critic) =>
        opt.MinimizeAux(() =>
        {
            var fake = Net.Forward(noise, digits, training: true);
            var loss = nn.functional.softplus(-critic.Logits(fake, digits)).mean();
            return (loss, fake.detach());
        }, Net);
}
