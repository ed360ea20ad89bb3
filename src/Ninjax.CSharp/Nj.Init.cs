using static TorchSharp.torch;

namespace Ninjax.CSharp;

public static partial class Nj
{
    /// <summary>Makes an initializer from an impure function of 0 arguments (ninjax's <c>init</c>): the result runs it with
    /// create and ignore on and returns the state it populates, <c>var state = Nj.Init(model.Train)(States.Empty, seed: 0)</c>.</summary>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc Init<TResult>(Func<TResult> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<ValueTuple, TResult>(function, _ => function(), nested, name, false, rngStream);
        return (state, seed) => purified.Init(state, default, seed);
    }

    /// <summary>Makes an initializer from an impure function of 1 argument (ninjax's <c>init</c>): the result runs it with
    /// create and ignore on and returns the state it populates, <c>var state = Nj.Init(model.Train)(States.Empty, x1, seed: 0)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1> Init<T1, TResult>(Func<T1, TResult> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<T1, TResult>(function, a => function(a), nested, name, false, rngStream);
        return (state, arg1, seed) => purified.Init(state, arg1, seed);
    }

    /// <summary>Makes an initializer from an impure function of 2 arguments (ninjax's <c>init</c>): the result runs it with
    /// create and ignore on and returns the state it populates, <c>var state = Nj.Init(model.Train)(States.Empty, x1, x2, seed: 0)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1, T2> Init<T1, T2, TResult>(Func<T1, T2, TResult> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2), TResult>(function, a => function(a.Item1, a.Item2), nested, name, false, rngStream);
        return (state, arg1, arg2, seed) => purified.Init(state, (arg1, arg2), seed);
    }

    /// <summary>Makes an initializer from an impure function of 3 arguments (ninjax's <c>init</c>): the result runs it with
    /// create and ignore on and returns the state it populates, <c>var state = Nj.Init(model.Train)(States.Empty, x1, x2, x3, seed: 0)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1, T2, T3> Init<T1, T2, T3, TResult>(Func<T1, T2, T3, TResult> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3), TResult>(function, a => function(a.Item1, a.Item2, a.Item3), nested, name, false, rngStream);
        return (state, arg1, arg2, arg3, seed) => purified.Init(state, (arg1, arg2, arg3), seed);
    }

    /// <summary>Makes an initializer from an impure function of 4 arguments (ninjax's <c>init</c>): the result runs it with
    /// create and ignore on and returns the state it populates, <c>var state = Nj.Init(model.Train)(States.Empty, x1, x2, x3, x4, seed: 0)</c>.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1, T2, T3, T4> Init<T1, T2, T3, T4, TResult>(Func<T1, T2, T3, T4, TResult> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3, T4), TResult>(function, a => function(a.Item1, a.Item2, a.Item3, a.Item4), nested, name, false, rngStream);
        return (state, arg1, arg2, arg3, arg4, seed) => purified.Init(state, (arg1, arg2, arg3, arg4), seed);
    }

    /// <summary>Makes an initializer from an impure function of 1 tensor argument; lets C# infer the types from a method group: <c>Nj.Init(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor> Init<TResult>(Func<Tensor, TResult> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor, TResult>(function, nested, name, rngStream);

    /// <summary>Makes an initializer from an impure function of 2 tensor arguments; lets C# infer the types from a method group: <c>Nj.Init(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor, Tensor> Init<TResult>(Func<Tensor, Tensor, TResult> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor, Tensor, TResult>(function, nested, name, rngStream);

    /// <summary>Makes an initializer from an impure function of 3 tensor arguments; lets C# infer the types from a method group: <c>Nj.Init(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor, Tensor, Tensor> Init<TResult>(Func<Tensor, Tensor, Tensor, TResult> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor, Tensor, Tensor, TResult>(function, nested, name, rngStream);

    /// <summary>Makes an initializer from an impure function of 4 tensor arguments; lets C# infer the types from a method group: <c>Nj.Init(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns (discarded).</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor, Tensor, Tensor, Tensor> Init<TResult>(Func<Tensor, Tensor, Tensor, Tensor, TResult> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor, Tensor, Tensor, Tensor, TResult>(function, nested, name, rngStream);

    /// <summary>Makes an initializer from an impure function of 0 arguments that returns nothing.</summary>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc Init(Action function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<ValueTuple, ValueTuple>(function, _ =>
        {
            function();
            return default;
        }, nested, name, false, rngStream);
        return (state, seed) => purified.Init(state, default, seed);
    }

    /// <summary>Makes an initializer from an impure function of 1 argument that returns nothing.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1> Init<T1>(Action<T1> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<T1, ValueTuple>(function, a =>
        {
            function(a);
            return default;
        }, nested, name, false, rngStream);
        return (state, arg1, seed) => purified.Init(state, arg1, seed);
    }

    /// <summary>Makes an initializer from an impure function of 2 arguments that returns nothing.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1, T2> Init<T1, T2>(Action<T1, T2> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2), ValueTuple>(function, a =>
        {
            function(a.Item1, a.Item2);
            return default;
        }, nested, name, false, rngStream);
        return (state, arg1, arg2, seed) => purified.Init(state, (arg1, arg2), seed);
    }

    /// <summary>Makes an initializer from an impure function of 3 arguments that returns nothing.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1, T2, T3> Init<T1, T2, T3>(Action<T1, T2, T3> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3), ValueTuple>(function, a =>
        {
            function(a.Item1, a.Item2, a.Item3);
            return default;
        }, nested, name, false, rngStream);
        return (state, arg1, arg2, arg3, seed) => purified.Init(state, (arg1, arg2, arg3), seed);
    }

    /// <summary>Makes an initializer from an impure function of 4 arguments that returns nothing.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<T1, T2, T3, T4> Init<T1, T2, T3, T4>(Action<T1, T2, T3, T4> function, bool nested = false, string? name = null, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3, T4), ValueTuple>(function, a =>
        {
            function(a.Item1, a.Item2, a.Item3, a.Item4);
            return default;
        }, nested, name, false, rngStream);
        return (state, arg1, arg2, arg3, arg4, seed) => purified.Init(state, (arg1, arg2, arg3, arg4), seed);
    }

    /// <summary>Makes an initializer from an impure function of 1 tensor argument that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor> Init(Action<Tensor> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor>(function, nested, name, rngStream);

    /// <summary>Makes an initializer from an impure function of 2 tensor arguments that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor, Tensor> Init(Action<Tensor, Tensor> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor, Tensor>(function, nested, name, rngStream);

    /// <summary>Makes an initializer from an impure function of 3 tensor arguments that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor, Tensor, Tensor> Init(Action<Tensor, Tensor, Tensor> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor, Tensor, Tensor>(function, nested, name, rngStream);

    /// <summary>Makes an initializer from an impure function of 4 tensor arguments that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function whose entries to create.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The initializer.</returns>
    public static InitFunc<Tensor, Tensor, Tensor, Tensor> Init(Action<Tensor, Tensor, Tensor, Tensor> function, bool nested = false, string? name = null, string? rngStream = null) =>
        Init<Tensor, Tensor, Tensor, Tensor>(function, nested, name, rngStream);

}