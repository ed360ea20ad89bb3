using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>A linear regression y = x w + b, as a C# module.</summary>
public sealed class Affine : Module
{
    /// <summary>A regression named <paramref name="name"/>, or a submodule.</summary>
    public Affine(string? name = null) : base(name) { }

    /// <summary>x w + b.</summary>
    public Tensor Forward(Tensor x) => x.matmul(Get("w", () => ones(2, 1))) + Get("b", () => zeros(1));

    /// <summary>Mean squared error.</summary>
    public Tensor Loss(Tensor x, Tensor y) => (Forward(x) - y).square().mean();

    /// <summary>One step of plain gradient descent on the module's own entries.</summary>
    public Tensor Step(Tensor x, Tensor y)
    {
        var (loss, parameters, grads) = Nj.Grad(Loss, this)(x, y);
        PutM(parameters.Map((key, p) => p - 0.02 * grads[key]));
        return loss;
    }
}

/// <summary>Gradients from C#: values, targets, side effects, auxiliary outputs, inputs, and a training step.</summary>
public class GradTests
{
    private static readonly Tensor X = tensor(new float[] { 1, 2, 3, 4, 0, 1 }).reshape(3, 2);
    private static readonly Tensor Y = tensor(new float[] { 5, 11, 1 }).reshape(3, 1);

    [Fact]
    public void Grad_returns_the_loss_the_parameters_and_their_gradients()
    {
        var model = new Affine("affine");
        var state = Nj.Init(model.Loss)(States.Empty, X, Y);
        var (_, result) = Nj.Pure(() => Nj.Grad(() => model.Forward(X).sum(), model))(state);
        Assert.Equal(new[] { "affine/b", "affine/w" }, result.Params.Keys);
        Assert.Equal(result.Params.Keys, result.Grads.Keys);
        // d sum(x w + b) / dw = column sums of x; / db = number of rows.
        SameTensor(tensor(new float[] { 4, 7 }).reshape(2, 1), result.Grads["affine/w"], "dw");
        SameTensor(full(1, 3f), result.Grads["affine/b"], "db");
        SameTensor(tensor(11f), result.Loss, "loss = 3 + 7 + 1");
        SameTensor(state["affine/w"], result.Params["affine/w"], "params as they were");
    }

    [Fact]
    public void Grad_with_arguments_and_a_string_key_target_matches_the_closure_form()
    {
        var model = new Affine("affine2");
        var state = Nj.Init(model.Loss)(States.Empty, X, Y);
        var (_, viaArgs) = Nj.Pure((Tensor x, Tensor y) => Nj.Grad(model.Loss, "affine2/w")(x, y))(state, X, Y);
        var (_, viaClosure) = Nj.Pure(() => Nj.Grad(() => model.Loss(X, Y), "affine2/w"))(state);
        Assert.Equal(new[] { "affine2/w" }, viaArgs.Grads.Keys);
        SameTensor(viaClosure.Loss, viaArgs.Loss, "loss");
        SameTensor(viaClosure.Grads["affine2/w"], viaArgs.Grads["affine2/w"], "grad");
    }

    [Fact]
    public void Writes_inside_the_loss_are_kept_and_count_once_per_call()
    {
        var calls = new Counter("calls");
        var v = new Variable(() => full(2, 3f), "v");
        Tensor Loss()
        {
            calls.Increment();
            return v.Read().square().sum();
        }
        var state = Nj.Init(Loss)(States.Empty);
        var step = Nj.Pure(() => Nj.Grad(Loss, v));
        var (s1, r1) = step(state);
        var (s2, _) = step(s1);
        Assert.Equal(1f, s1["calls/count"].item<float>());
        Assert.Equal(2f, s2["calls/count"].item<float>());
        Assert.False(s1["calls/count"].requires_grad);
        SameTensor(full(2, 6f), r1.Grads["v/value"], "d sum(v^2) / dv = 2 v");
        SameTensor(tensor(18f), r1.Loss, "loss");
    }

    [Fact]
    public void GradAux_returns_the_auxiliary_output_with_and_without_arguments()
    {
        var model = new Affine("aux");
        var state = Nj.Init(model.Loss)(States.Empty, X, Y);
        var (_, closure) = Nj.Pure(() => Nj.GradAux(() => (model.Loss(X, Y), model.Forward(X)), model))(state);
        var (_, withArgs) = Nj.Pure(() => Nj.GradAux((Tensor x, Tensor y) => (model.Loss(x, y), x.shape[0]), model)(X, Y))(state);
        SameTensor(X.matmul(ones(2, 1)), closure.Aux, "aux: the prediction");
        Assert.Equal(3L, withArgs.Aux);
        SameTensor(closure.Grads["aux/w"], withArgs.Grads["aux/w"], "same gradient");
    }

    [Fact]
    public void GradInputs_differentiates_with_respect_to_explicit_tensors()
    {
        var a = tensor(new float[] { 1, 2 });
        var b = tensor(new float[] { 3, 5 });
        var (_, result) = Nj.Pure(() => Nj.GradInputs(xs => (xs[0] * xs[1]).sum(), new[] { a, b }))(States.Empty);
        Assert.Equal(2, result.InputGrads.Count);
        SameTensor(b, result.InputGrads[0], "d(a.b)/da = b");
        SameTensor(a, result.InputGrads[1], "d(a.b)/db = a");
        Assert.Equal(0, result.Params.Count);
    }

    [Fact]
    public void An_optimizer_step_lowers_the_loss_every_step()
    {
        var model = new Affine("sgd");
        var state = Nj.Init(model.Step)(States.Empty, X, Y);
        var step = Nj.Pure(model.Step);
        var losses = new List<float>();
        for (var i = 0; i < 20; i++)
        {
            (state, var loss) = step(state, X, Y);
            losses.Add(loss.item<float>());
        }
        Assert.All(losses.Zip(losses.Skip(1)), pair => Assert.True(pair.Second < pair.First, $"loss rose: {string.Join(", ", losses)}"));
        Assert.True(losses[^1] < losses[0] * 0.1f, $"losses: {string.Join(", ", losses)}");
    }
}
