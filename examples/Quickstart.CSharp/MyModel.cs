using Ninjax;
using Ninjax.CSharp;
using static TorchSharp.torch;

namespace Quickstart;

/// <summary>The seed README's Quickstart model in C#: submodules defined upfront and inline, a state entry
/// created inline, and a train method that updates its parameters with its own Adam optimizer.</summary>
public sealed class MyModel : Module
{
    private readonly int size;
    private readonly Dense h1;
    private readonly Dense h2;
    private readonly OptimizerModule opt;

    /// <summary>A model with <paramref name="size"/> outputs; the learning rate is a hyperparameter with a default.</summary>
    public MyModel(int size, double lr = 0.01, string name = "model") : base(name)
    {
        this.size = size;
        // The optimizer is a submodule too: its state lives under model/opt.
        opt = Sub("opt", () => new OptimizerModule(Optimizers.Adam(lr)));
        // Define submodules upfront.
        h1 = Sub("h1", () => new Dense(128));
        h2 = Sub("h2", () => new Dense(128));
    }

    /// <summary>The model's prediction for a batch.</summary>
    public Tensor Predict(Tensor x)
    {
        x = nn.functional.relu(h1.Forward(x));
        x = nn.functional.relu(h2.Forward(x));
        // Define submodules inline.
        x = Sub("h3", () => new Dense(size, useBias: false)).Forward(x);
        // Create state entries inline.
        return x + Get("bias", () => zeros(size));
    }

    /// <summary>The mean squared error of the prediction.</summary>
    public Tensor Loss(Tensor x, Tensor y) => (Predict(x) - y).square().mean();

    /// <summary>One Adam step; returns the loss before the step.</summary>
    public Tensor Train(Tensor x, Tensor y)
    {
        // Differentiate with respect to submodules or state entries, update them, store the new parameters.
        var metrics = opt.Minimize(Loss, [h1, h2, $"{Path}/h3", $"{Path}/bias"], x, y);
        return metrics.Loss;
    }
}
