using Microsoft.FSharp.Core;
using Xunit;
using static TorchSharp.torch;

namespace Ninjax.CSharp.Tests;

/// <summary>Assertions over tensors and states, and a way to run code through the F# API for comparison.</summary>
internal static class Check
{
    /// <summary>A float32 vector.</summary>
    public static Tensor Vec(params float[] values) => tensor(values);

    /// <summary>The values of a tensor as floats.</summary>
    public static float[] Values(Tensor t) => t.detach().to_type(float32).data<float>().ToArray();

    /// <summary>True when both tensors have the same shape, dtype and bit-identical values.</summary>
    public static bool Identical(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && (a.numel() == 0 || a.allclose(b, 0, 0, equal_nan: true));

    /// <summary>Asserts two tensors are identical.</summary>
    public static void SameTensor(Tensor expected, Tensor actual, string what)
    {
        Assert.True(Identical(expected, actual),
            $"{what}: expected {expected.ToString(TorchSharp.TensorStringStyle.Julia)}, got {actual.ToString(TorchSharp.TensorStringStyle.Julia)}");
    }

    /// <summary>Asserts two tensors agree within a tolerance.</summary>
    public static void Close(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape) && expected.allclose(actual, tolerance, tolerance),
            $"{what}: expected {expected.ToString(TorchSharp.TensorStringStyle.Julia)}, got {actual.ToString(TorchSharp.TensorStringStyle.Julia)}");
    }

    /// <summary>Asserts two states hold the same keys with identical tensors.</summary>
    public static void SameState(State expected, State actual, string what)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var key in expected.Keys) SameTensor(expected[key], actual[key], $"{what}: entry {key}");
    }

    /// <summary>Runs an impure function through the F# API (<c>Nj.purifyWith</c>) as an F# caller would.</summary>
    public static (State State, T Output) PurifyInFSharp<T>(Func<T> function, State state, Options options)
    {
        var purified = NjModule.purifyWith(options, FuncConvert.FromFunc<ValueTuple, T>(_ => function()));
        var result = FSharpFunc<State, ValueTuple>.InvokeFast(purified, state, default);
        return (result.Item1, result.Item2);
    }

    /// <summary>The exception <paramref name="action"/> raises, asserting its exact type.</summary>
    public static TException Raises<TException>(Action action) where TException : Exception => Assert.Throws<TException>(action);
}

/// <summary>A counter module: each call adds one to its entry.</summary>
public sealed class Counter : Module
{
    /// <summary>A counter; top-level when given a name, a submodule when built through Sub.</summary>
    public Counter(string? name = null) : base(name) { }

    /// <summary>Adds one and returns the new count.</summary>
    public Tensor Increment() => Put("count", Get("count", () => zeros(1)) + 1);
}

/// <summary>A dense layer written in C#, usable inside F# models.</summary>
public sealed class CsDense : Module, FSharpModels.ILayer
{
    private readonly int units;

    /// <summary>A layer with <paramref name="units"/> outputs.</summary>
    public CsDense(int units, string? name = null) : base(name) => this.units = units;

    /// <summary>x W + b, with W drawn from the call's generator.</summary>
    public Tensor Forward(Tensor x)
    {
        var w = Get("w", () => randn(new[] { x.shape[^1], (long)units }, generator: Nj.Rng()) * 0.5);
        var b = Get("b", () => zeros(units));
        return x.matmul(w) + b;
    }
}
