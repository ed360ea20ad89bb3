using Ninjax;
using Ninjax.CSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

// Issue 11.4: these four usings together, and Ninjax's layers beside TorchSharp's modules of the same
// purpose, compile without an ambiguous name (CS0104). This file is the check: it is compiled with the
// test project, and NameClashTests runs it. It lives outside the Ninjax namespaces, so nothing but the
// usings above brings names in; keep it that way (use Xunit by its full name).
namespace NameClash;

/// <summary>A model that uses Ninjax's layers and TorchSharp's modules side by side.</summary>
public sealed class SideBySide : Module
{
    private readonly Conv2D conv;
    private readonly TorchModule<Conv2d> torchConv;
    private readonly BatchNormalization norm;
    private readonly Dense dense;
    private readonly Embed embed;
    private readonly TorchModule<BatchNorm1d> torchNorm;
    private readonly LayerNormalization layerNorm;
    private readonly TorchModule<LayerNorm> torchLayerNorm;
    private readonly TorchModule<Linear> head;
    private readonly OptimizerModule opt;

    /// <summary>The model, named <c>model</c>.</summary>
    public SideBySide() : base("model")
    {
        conv = Sub("conv", () => new Conv2D(4, 3, padding: 1));
        torchConv = Sub("tconv", () => new TorchModule<Conv2d>(() => nn.Conv2d(4, 4, 3, padding: 1)));
        norm = Sub("norm", () => new BatchNormalization(momentum: 0.2));
        dense = Sub("dense", () => new Dense(8));
        embed = Sub("embed", () => new Embed(10, 8, paddingIndex: 0));
        torchNorm = Sub("tnorm", () => new TorchModule<BatchNorm1d>(() => nn.BatchNorm1d(8)));
        layerNorm = Sub("ln", () => new LayerNormalization());
        torchLayerNorm = Sub("tln", () => new TorchModule<LayerNorm>(() => nn.LayerNorm(8)));
        head = Sub("head", () => new TorchModule<Linear>(() => nn.Linear(8, 3)));
        opt = Sub("opt", () => new OptimizerModule(Optimizers.Adam(1e-2)));
    }

    /// <summary>Class scores for images [batch, 1, 4, 4] and label hints [batch] in [0, 10).</summary>
    public Tensor Predict(Tensor images, Tensor hints, bool training)
    {
        var h = nn.functional.relu(torchConv.Forward(conv.Forward(images)));
        h = norm.Forward(h, training);
        h = Ops.Dropout(0.25, training, h.flatten(1));
        h = dense.Forward(h) + embed.Forward(hints);
        h = torchNorm.Forward(h, training);
        return head.Forward(torchLayerNorm.Forward(layerNorm.Forward(h)));
    }

    /// <summary>Cross-entropy of the training-mode scores.</summary>
    public Tensor Loss(Tensor images, Tensor labels) => nn.functional.cross_entropy(Predict(images, labels, true), labels);

    /// <summary>One Adam step on every parameter of the model: Target.Module leaves the running statistics,
    /// TorchSharp's Int64 <c>num_batches_tracked</c> and the optimizer's own state out by itself.</summary>
    public Tensor Train(Tensor images, Tensor labels) => opt.Minimize(() => Loss(images, labels), this).Loss;
}

/// <summary>Runs the model that uses both libraries' names.</summary>
public class NameClashTests
{
    /// <summary>The model trains, with parameters and other state told apart.</summary>
    [Xunit.Fact]
    public void Ninjax_layers_and_TorchSharp_modules_train_side_by_side()
    {
        var generator = new Generator(3);
        var images = randn([16, 1, 4, 4], generator: generator);
        var labels = randint(0, 3, [16], generator: generator);
        var model = new SideBySide();
        var state = Nj.Init<Tensor, Tensor, Tensor>(model.Train)(States.Empty, images, labels, seed: 0);
        var parameters = model.ParameterKeys(state);
        Xunit.Assert.Contains("model/norm/scale", parameters);
        Xunit.Assert.Contains("model/tnorm/weight", parameters);
        Xunit.Assert.Contains("model/embed/embedding", parameters);
        Xunit.Assert.DoesNotContain("model/norm/mean", parameters);
        Xunit.Assert.DoesNotContain("model/tnorm/running_var", parameters);
        Xunit.Assert.DoesNotContain("model/tnorm/num_batches_tracked", parameters);
        Xunit.Assert.DoesNotContain(parameters, k => k.StartsWith("model/opt/", StringComparison.Ordinal));
        Xunit.Assert.Equal(EntryKind.Buffer, model.EntryKinds(state)["model/tnorm/num_batches_tracked"]);

        var train = Nj.Pure<Tensor, Tensor, Tensor>(model.Train, donate: true);
        var first = 0f;
        var last = 0f;
        for (var step = 0; step < 40; step++)
        {
            (state, var loss) = train(state, images, labels, seed: step);
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Xunit.Assert.True(last < first * 0.5f, $"the loss falls: {first} -> {last}");

        // TorchSharp's own Dropout and Embedding beside Ninjax's: eval passes through, a table reads its rows.
        Dropout torchDropout = nn.Dropout(0.25);
        torchDropout.eval();
        var (_, passed) = Nj.Pure((Tensor x) => Ops.Dropout(0.25, false, x))(state, images);
        Xunit.Assert.True(torchDropout.call(images).allclose(passed, 0, 0));
        Embedding table = nn.Embedding_from_pretrained(state["model/embed/embedding"], padding_idx: 0);
        var (_, rows) = Nj.Pure((Tensor i) => model.Predict(images, i, false))(state, labels);
        Xunit.Assert.Equal(new long[] { 16, 8 }, table.call(labels).shape);
        Xunit.Assert.Equal(new long[] { 16, 3 }, rows.shape);
    }
}
