using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Gradient transformations used functionally from C#, as Optax is: Init, Update, ApplyUpdates, and the
/// building blocks chained into the optimizers.</summary>
public class TransformTests
{
    private static (State Params, State Grads) Sample()
    {
        using var g = new Generator(11);
        return (States.From(("w", randn(new long[] { 3, 2 }, generator: g)), ("b", randn(new long[] { 2 }, generator: g))),
            States.From(("w", randn(new long[] { 3, 2 }, generator: g)), ("b", randn(new long[] { 2 }, generator: g))));
    }

    [Fact]
    public void Init_Update_and_ApplyUpdates_run_a_transformation_by_hand()
    {
        var (ps, grads) = Sample();
        var adam = Optimizers.Adam(0.1);
        var state = adam.Init(ps);
        Assert.Contains(Optimizers.CountKey, state.Keys);
        Assert.Contains("mu/w", state.Keys);
        var (updates, next) = adam.Update(grads, state, ps);
        Assert.Equal(1L, next[Optimizers.CountKey].item<long>());
        var moved = Optimizers.ApplyUpdates(ps, updates);
        foreach (var key in ps.Keys) SameTensor(ps[key] + updates[key], moved[key], key);
        // Adam is the chain of its building blocks.
        var blocks = Optimizers.Chain(Optimizers.ScaleByAdam(), Optimizers.ScaleByLearningRate(0.1));
        var (same, _) = blocks.Update(grads, blocks.Init(ps), ps);
        foreach (var key in ps.Keys) Close(updates[key], same[key], 1e-6, key);
    }

    [Fact]
    public void The_building_blocks()
    {
        var (ps, grads) = Sample();
        var (scaled, _) = Optimizers.Scale(2).Update(grads, States.Empty, ps);
        SameTensor(grads["w"] * 2, scaled["w"], "scale");
        var (same, _) = Optimizers.Identity.Update(grads, States.Empty, ps);
        SameTensor(grads["b"], same["b"], "identity");
        var (decayed, _) = Optimizers.AddDecayedWeights(0.5).Update(grads, States.Empty, ps);
        Close(grads["w"] + 0.5 * ps["w"], decayed["w"], 1e-7, "decayed weights");
        var momentum = Optimizers.Trace(0.9);
        var (first, _) = momentum.Update(grads, momentum.Init(ps), ps);
        SameTensor(grads["w"], first["w"], "momentum starts at the gradient");
        var rms = Optimizers.ScaleByRms(centered: true);
        Assert.Contains("mu/w", rms.Init(ps).Keys);
        var scoped = Optimizers.Scoped("adam", Optimizers.ScaleByAdam());
        Assert.Contains("adam/mu/w", scoped.Init(ps).Keys);
        Assert.Equal(Optax.globalNorm(grads).item<double>(), Optimizers.GlobalNorm(grads).item<double>());
        var schedule = Optimizers.ScaleByLearningRate(Schedules.Constant(0.5));
        var (descent, lrState) = schedule.Update(grads, schedule.Init(ps), ps);
        SameTensor(grads["w"] * -0.5, descent["w"], "descent");
        Assert.Equal(0.5, lrState[Optimizers.LearningRateKey].item<double>());
    }
}
