using Xunit;
using static Ninjax.CSharp.Tests.Check;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Seeds decide randomness: the same seed gives the same parameters.</summary>
public class SeedTests
{
    private static readonly Tensor X = ones(4, 5);

    [Fact]
    public void The_same_seed_gives_identical_parameters_and_another_seed_different_ones()
    {
        var layer = new CsDense(3, "dense");
        var init = Nj.Init(layer.Forward);
        var a = init(States.Empty, X, seed: 7);
        var b = init(States.Empty, X, seed: 7);
        var c = init(States.Empty, X, seed: 8);
        SameState(a, b, "same seed");
        Assert.False(Identical(a["dense/w"], c["dense/w"]), "another seed gives other values");
    }

    [Fact]
    public void Rng_draws_differ_within_a_call_and_repeat_across_calls_with_the_seed()
    {
        var draw = Nj.Pure(() => (rand(3, generator: Nj.Rng()), rand(3, generator: Nj.Rng())));
        var (_, (first, second)) = draw(States.Empty, seed: 1);
        var (_, (again, _)) = draw(States.Empty, seed: 1);
        Assert.False(Identical(first, second), "two generators in one call differ");
        SameTensor(first, again, "the same seed repeats");
    }

    [Fact]
    public void A_seed_passed_to_Pure_reaches_Rng()
    {
        var layer = new CsDense(2, "dense2");
        var state = Nj.Init(layer.Forward)(States.Empty, X, seed: 3);
        var (created, _) = Nj.Pure(layer.Forward)(States.Empty, X, seed: 3, create: true);
        SameState(state, created, "Pure with create and seed equals Init");
    }
}
