using static TorchSharp.torch;

namespace Ninjax.CSharp;

public static partial class Nj
{
    /// <summary>Purifies an impure function of 0 arguments (ninjax's <c>pure</c>): the result runs it on an explicit
    /// state, <c>var (state, output) = train(state, seed: 0)</c>, and leaves the input state unchanged unless <paramref name="donate"/> hands it over.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<TResult> Pure<TResult>(Func<TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<ValueTuple, TResult>(function, _ => function(), nested, name, donate, rngStream);
        return (state, seed, create, modify, ignore) => purified.Run(state, default, seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 1 argument (ninjax's <c>pure</c>): the result runs it on an explicit
    /// state, <c>var (state, output) = train(state, x1, seed: 0)</c>, and leaves the input state unchanged unless <paramref name="donate"/> hands it over.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<T1, TResult> Pure<T1, TResult>(Func<T1, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<T1, TResult>(function, a => function(a), nested, name, donate, rngStream);
        return (state, arg1, seed, create, modify, ignore) => purified.Run(state, arg1, seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 2 arguments (ninjax's <c>pure</c>): the result runs it on an explicit
    /// state, <c>var (state, output) = train(state, x1, x2, seed: 0)</c>, and leaves the input state unchanged unless <paramref name="donate"/> hands it over.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<T1, T2, TResult> Pure<T1, T2, TResult>(Func<T1, T2, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2), TResult>(function, a => function(a.Item1, a.Item2), nested, name, donate, rngStream);
        return (state, arg1, arg2, seed, create, modify, ignore) => purified.Run(state, (arg1, arg2), seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 3 arguments (ninjax's <c>pure</c>): the result runs it on an explicit
    /// state, <c>var (state, output) = train(state, x1, x2, x3, seed: 0)</c>, and leaves the input state unchanged unless <paramref name="donate"/> hands it over.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<T1, T2, T3, TResult> Pure<T1, T2, T3, TResult>(Func<T1, T2, T3, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3), TResult>(function, a => function(a.Item1, a.Item2, a.Item3), nested, name, donate, rngStream);
        return (state, arg1, arg2, arg3, seed, create, modify, ignore) => purified.Run(state, (arg1, arg2, arg3), seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 4 arguments (ninjax's <c>pure</c>): the result runs it on an explicit
    /// state, <c>var (state, output) = train(state, x1, x2, x3, x4, seed: 0)</c>, and leaves the input state unchanged unless <paramref name="donate"/> hands it over.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<T1, T2, T3, T4, TResult> Pure<T1, T2, T3, T4, TResult>(Func<T1, T2, T3, T4, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3, T4), TResult>(function, a => function(a.Item1, a.Item2, a.Item3, a.Item4), nested, name, donate, rngStream);
        return (state, arg1, arg2, arg3, arg4, seed, create, modify, ignore) => purified.Run(state, (arg1, arg2, arg3, arg4), seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 1 tensor argument; lets C# infer the types from a method group: <c>Nj.Pure(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<Tensor, TResult> Pure<TResult>(Func<Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor, TResult>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 2 tensor arguments; lets C# infer the types from a method group: <c>Nj.Pure(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<Tensor, Tensor, TResult> Pure<TResult>(Func<Tensor, Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor, Tensor, TResult>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 3 tensor arguments; lets C# infer the types from a method group: <c>Nj.Pure(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<Tensor, Tensor, Tensor, TResult> Pure<TResult>(Func<Tensor, Tensor, Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor, Tensor, Tensor, TResult>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 4 tensor arguments; lets C# infer the types from a method group: <c>Nj.Pure(model.Train)</c>.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function, typically a module method.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureFunc<Tensor, Tensor, Tensor, Tensor, TResult> Pure<TResult>(Func<Tensor, Tensor, Tensor, Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor, Tensor, Tensor, Tensor, TResult>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 0 arguments that returns nothing: the result runs it on an explicit state
    /// and returns the new state.</summary>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction Pure(Action function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<ValueTuple, ValueTuple>(function, _ =>
        {
            function();
            return default;
        }, nested, name, donate, rngStream);
        return (state, seed, create, modify, ignore) => purified.Run(state, default, seed, create, modify, ignore).State;
    }

    /// <summary>Purifies an impure function of 1 argument that returns nothing: the result runs it on an explicit state
    /// and returns the new state.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<T1> Pure<T1>(Action<T1> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<T1, ValueTuple>(function, a =>
        {
            function(a);
            return default;
        }, nested, name, donate, rngStream);
        return (state, arg1, seed, create, modify, ignore) => purified.Run(state, arg1, seed, create, modify, ignore).State;
    }

    /// <summary>Purifies an impure function of 2 arguments that returns nothing: the result runs it on an explicit state
    /// and returns the new state.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<T1, T2> Pure<T1, T2>(Action<T1, T2> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2), ValueTuple>(function, a =>
        {
            function(a.Item1, a.Item2);
            return default;
        }, nested, name, donate, rngStream);
        return (state, arg1, arg2, seed, create, modify, ignore) => purified.Run(state, (arg1, arg2), seed, create, modify, ignore).State;
    }

    /// <summary>Purifies an impure function of 3 arguments that returns nothing: the result runs it on an explicit state
    /// and returns the new state.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<T1, T2, T3> Pure<T1, T2, T3>(Action<T1, T2, T3> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3), ValueTuple>(function, a =>
        {
            function(a.Item1, a.Item2, a.Item3);
            return default;
        }, nested, name, donate, rngStream);
        return (state, arg1, arg2, arg3, seed, create, modify, ignore) => purified.Run(state, (arg1, arg2, arg3), seed, create, modify, ignore).State;
    }

    /// <summary>Purifies an impure function of 4 arguments that returns nothing: the result runs it on an explicit state
    /// and returns the new state.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<T1, T2, T3, T4> Pure<T1, T2, T3, T4>(Action<T1, T2, T3, T4> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3, T4), ValueTuple>(function, a =>
        {
            function(a.Item1, a.Item2, a.Item3, a.Item4);
            return default;
        }, nested, name, donate, rngStream);
        return (state, arg1, arg2, arg3, arg4, seed, create, modify, ignore) => purified.Run(state, (arg1, arg2, arg3, arg4), seed, create, modify, ignore).State;
    }

    /// <summary>Purifies an impure function of 1 tensor argument that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<Tensor> Pure(Action<Tensor> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 2 tensor arguments that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<Tensor, Tensor> Pure(Action<Tensor, Tensor> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor, Tensor>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 3 tensor arguments that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<Tensor, Tensor, Tensor> Pure(Action<Tensor, Tensor, Tensor> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor, Tensor, Tensor>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 4 tensor arguments that returns nothing; lets C# infer the types from a method group.</summary>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function.</returns>
    public static PureAction<Tensor, Tensor, Tensor, Tensor> Pure(Action<Tensor, Tensor, Tensor, Tensor> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        Pure<Tensor, Tensor, Tensor, Tensor>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 0 arguments with tracking (ninjax's <c>track=True</c>): the result also
    /// returns the keys the call read, modified and created.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<TResult> PureTracked<TResult>(Func<TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<ValueTuple, TResult>(function, _ => function(), nested, name, donate, rngStream);
        return (state, seed, create, modify, ignore) => purified.Track(state, default, seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 1 argument with tracking (ninjax's <c>track=True</c>): the result also
    /// returns the keys the call read, modified and created.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<T1, TResult> PureTracked<T1, TResult>(Func<T1, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<T1, TResult>(function, a => function(a), nested, name, donate, rngStream);
        return (state, arg1, seed, create, modify, ignore) => purified.Track(state, arg1, seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 2 arguments with tracking (ninjax's <c>track=True</c>): the result also
    /// returns the keys the call read, modified and created.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<T1, T2, TResult> PureTracked<T1, T2, TResult>(Func<T1, T2, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2), TResult>(function, a => function(a.Item1, a.Item2), nested, name, donate, rngStream);
        return (state, arg1, arg2, seed, create, modify, ignore) => purified.Track(state, (arg1, arg2), seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 3 arguments with tracking (ninjax's <c>track=True</c>): the result also
    /// returns the keys the call read, modified and created.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<T1, T2, T3, TResult> PureTracked<T1, T2, T3, TResult>(Func<T1, T2, T3, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3), TResult>(function, a => function(a.Item1, a.Item2, a.Item3), nested, name, donate, rngStream);
        return (state, arg1, arg2, arg3, seed, create, modify, ignore) => purified.Track(state, (arg1, arg2, arg3), seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 4 arguments with tracking (ninjax's <c>track=True</c>): the result also
    /// returns the keys the call read, modified and created.</summary>
    /// <typeparam name="T1">The type of the first argument.</typeparam>
    /// <typeparam name="T2">The type of the second argument.</typeparam>
    /// <typeparam name="T3">The type of the third argument.</typeparam>
    /// <typeparam name="T4">The type of the fourth argument.</typeparam>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<T1, T2, T3, T4, TResult> PureTracked<T1, T2, T3, T4, TResult>(Func<T1, T2, T3, T4, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null)
    {
        var purified = Purified.Of<(T1, T2, T3, T4), TResult>(function, a => function(a.Item1, a.Item2, a.Item3, a.Item4), nested, name, donate, rngStream);
        return (state, arg1, arg2, arg3, arg4, seed, create, modify, ignore) => purified.Track(state, (arg1, arg2, arg3, arg4), seed, create, modify, ignore);
    }

    /// <summary>Purifies an impure function of 1 tensor argument with tracking; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<Tensor, TResult> PureTracked<TResult>(Func<Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        PureTracked<Tensor, TResult>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 2 tensor arguments with tracking; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<Tensor, Tensor, TResult> PureTracked<TResult>(Func<Tensor, Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        PureTracked<Tensor, Tensor, TResult>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 3 tensor arguments with tracking; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<Tensor, Tensor, Tensor, TResult> PureTracked<TResult>(Func<Tensor, Tensor, Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        PureTracked<Tensor, Tensor, Tensor, TResult>(function, nested, name, donate, rngStream);

    /// <summary>Purifies an impure function of 4 tensor arguments with tracking; lets C# infer the types from a method group.</summary>
    /// <typeparam name="TResult">What the function returns.</typeparam>
    /// <param name="function">The impure function.</param>
    /// <param name="nested">Allow calls inside another purified call (their flags may only narrow the outer call's).</param>
    /// <param name="name">The function's name in error messages.</param>
    /// <param name="donate">Hand the state over on each call (JAX's donate_argnums): the call may update its tensors in
    /// place, as the optimizer does, and frees the entries it replaces; the state passed in cannot be used again.</param>
    /// <param name="rngStream">The state key of a random stream to draw randomness from (for example <c>"rng"</c>): each
    /// call advances it, so a loop gets fresh randomness every step; <c>Init</c> starts it from its seed. Null for none.</param>
    /// <returns>The purified function with tracking.</returns>
    public static TrackedFunc<Tensor, Tensor, Tensor, Tensor, TResult> PureTracked<TResult>(Func<Tensor, Tensor, Tensor, Tensor, TResult> function, bool nested = false, string? name = null, bool donate = false, string? rngStream = null) =>
        PureTracked<Tensor, Tensor, Tensor, Tensor, TResult>(function, nested, name, donate, rngStream);

}