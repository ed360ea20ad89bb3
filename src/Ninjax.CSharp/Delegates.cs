// The delegate types Nj returns for impure functions of zero to four arguments.
// Each takes the state first, then the function's arguments, then keyword-style options,
// as ninjax's pure functions do: train(state, x, y, seed: 0).

using TorchSharp;

namespace Ninjax.CSharp;

/// <summary>A purified function (see <see cref="Nj.Pure{TResult}(Func{TResult}, bool, string?, bool, string?)"/>): runs the impure function on
/// an explicit state and returns the new state and the function's output. The input state is never changed.</summary>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call and the function's output.</returns>
public delegate (State State, TResult Output) PureFunc<TResult>(State state, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function (see <see cref="Nj.Pure{TResult}(Func{TResult}, bool, string?, bool, string?)"/>): runs the impure function on
/// an explicit state and returns the new state and the function's output. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call and the function's output.</returns>
public delegate (State State, TResult Output) PureFunc<T1, TResult>(State state, T1 arg1, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function (see <see cref="Nj.Pure{TResult}(Func{TResult}, bool, string?, bool, string?)"/>): runs the impure function on
/// an explicit state and returns the new state and the function's output. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call and the function's output.</returns>
public delegate (State State, TResult Output) PureFunc<T1, T2, TResult>(State state, T1 arg1, T2 arg2, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function (see <see cref="Nj.Pure{TResult}(Func{TResult}, bool, string?, bool, string?)"/>): runs the impure function on
/// an explicit state and returns the new state and the function's output. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call and the function's output.</returns>
public delegate (State State, TResult Output) PureFunc<T1, T2, T3, TResult>(State state, T1 arg1, T2 arg2, T3 arg3, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function (see <see cref="Nj.Pure{TResult}(Func{TResult}, bool, string?, bool, string?)"/>): runs the impure function on
/// an explicit state and returns the new state and the function's output. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="T4">The type of the fourth argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="arg4">The fourth argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call and the function's output.</returns>
public delegate (State State, TResult Output) PureFunc<T1, T2, T3, T4, TResult>(State state, T1 arg1, T2 arg2, T3 arg3, T4 arg4, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function that returns nothing (see <see cref="Nj.Pure(Action, bool, string?, bool, string?)"/>): runs the impure
/// function on an explicit state and returns the new state. The input state is never changed.</summary>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call.</returns>
public delegate State PureAction(State state, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function that returns nothing (see <see cref="Nj.Pure(Action, bool, string?, bool, string?)"/>): runs the impure
/// function on an explicit state and returns the new state. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call.</returns>
public delegate State PureAction<T1>(State state, T1 arg1, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function that returns nothing (see <see cref="Nj.Pure(Action, bool, string?, bool, string?)"/>): runs the impure
/// function on an explicit state and returns the new state. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call.</returns>
public delegate State PureAction<T1, T2>(State state, T1 arg1, T2 arg2, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function that returns nothing (see <see cref="Nj.Pure(Action, bool, string?, bool, string?)"/>): runs the impure
/// function on an explicit state and returns the new state. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call.</returns>
public delegate State PureAction<T1, T2, T3>(State state, T1 arg1, T2 arg2, T3 arg3, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function that returns nothing (see <see cref="Nj.Pure(Action, bool, string?, bool, string?)"/>): runs the impure
/// function on an explicit state and returns the new state. The input state is never changed.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="T4">The type of the fourth argument.</typeparam>
/// <param name="state">The state to run on (<see cref="States.Empty"/> to start from nothing).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="arg4">The fourth argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call.</returns>
public delegate State PureAction<T1, T2, T3, T4>(State state, T1 arg1, T2 arg2, T3 arg3, T4 arg4, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function with tracking (see <see cref="Nj.PureTracked{TResult}(Func{TResult}, bool, string?, bool, string?)"/>, ninjax's
/// <c>track=True</c>): like <see cref="PureFunc{TResult}"/>, and also returns the keys the call read, modified (even when
/// the change was ignored) and created.</summary>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call, the output, and the keys read, modified and created, in key order.</returns>
public delegate (State State, TResult Output, IReadOnlySet<string> Read, IReadOnlySet<string> Modified, IReadOnlySet<string> Created) TrackedFunc<TResult>(State state, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function with tracking (see <see cref="Nj.PureTracked{TResult}(Func{TResult}, bool, string?, bool, string?)"/>, ninjax's
/// <c>track=True</c>): like <see cref="PureFunc{TResult}"/>, and also returns the keys the call read, modified (even when
/// the change was ignored) and created.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on.</param>
/// <param name="arg1">The first argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call, the output, and the keys read, modified and created, in key order.</returns>
public delegate (State State, TResult Output, IReadOnlySet<string> Read, IReadOnlySet<string> Modified, IReadOnlySet<string> Created) TrackedFunc<T1, TResult>(State state, T1 arg1, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function with tracking (see <see cref="Nj.PureTracked{TResult}(Func{TResult}, bool, string?, bool, string?)"/>, ninjax's
/// <c>track=True</c>): like <see cref="PureFunc{TResult}"/>, and also returns the keys the call read, modified (even when
/// the change was ignored) and created.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on.</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call, the output, and the keys read, modified and created, in key order.</returns>
public delegate (State State, TResult Output, IReadOnlySet<string> Read, IReadOnlySet<string> Modified, IReadOnlySet<string> Created) TrackedFunc<T1, T2, TResult>(State state, T1 arg1, T2 arg2, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function with tracking (see <see cref="Nj.PureTracked{TResult}(Func{TResult}, bool, string?, bool, string?)"/>, ninjax's
/// <c>track=True</c>): like <see cref="PureFunc{TResult}"/>, and also returns the keys the call read, modified (even when
/// the change was ignored) and created.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on.</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call, the output, and the keys read, modified and created, in key order.</returns>
public delegate (State State, TResult Output, IReadOnlySet<string> Read, IReadOnlySet<string> Modified, IReadOnlySet<string> Created) TrackedFunc<T1, T2, T3, TResult>(State state, T1 arg1, T2 arg2, T3 arg3, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>A purified function with tracking (see <see cref="Nj.PureTracked{TResult}(Func{TResult}, bool, string?, bool, string?)"/>, ninjax's
/// <c>track=True</c>): like <see cref="PureFunc{TResult}"/>, and also returns the keys the call read, modified (even when
/// the change was ignored) and created.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="T4">The type of the fourth argument.</typeparam>
/// <typeparam name="TResult">What the function returns.</typeparam>
/// <param name="state">The state to run on.</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="arg4">The fourth argument.</param>
/// <param name="seed">The seed that <see cref="Nj.Rng"/> derives from; omitted, randomness fails with a clear message.</param>
/// <param name="create">May the call add keys? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <param name="modify">May the call change existing keys? Omitted: on at the top level, the enclosing call's flag when nested.</param>
/// <param name="ignore">Are changes to existing keys silently dropped? Omitted: off at the top level, the enclosing call's flag when nested.</param>
/// <returns>The state after the call, the output, and the keys read, modified and created, in key order.</returns>
public delegate (State State, TResult Output, IReadOnlySet<string> Read, IReadOnlySet<string> Modified, IReadOnlySet<string> Created) TrackedFunc<T1, T2, T3, T4, TResult>(State state, T1 arg1, T2 arg2, T3 arg3, T4 arg4, long? seed = null, bool? create = null, bool? modify = null, bool? ignore = null);

/// <summary>An initializing function (see <see cref="Nj.Init{TResult}(Func{TResult}, bool, string?, string?)"/>, ninjax's init): runs the
/// impure function with create and ignore on and returns the state it populates. Entries that already exist are kept as they are.</summary>
/// <param name="state">The state to start from (<see cref="States.Empty"/> for a fresh model).</param>
/// <param name="seed">The seed that parameter initializers draw from.</param>
/// <returns>The input state with every entry the function creates added.</returns>
public delegate State InitFunc(State state, long? seed = null);

/// <summary>An initializing function (see <see cref="Nj.Init{TResult}(Func{TResult}, bool, string?, string?)"/>, ninjax's init): runs the
/// impure function with create and ignore on and returns the state it populates. Entries that already exist are kept as they are.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <param name="state">The state to start from (<see cref="States.Empty"/> for a fresh model).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="seed">The seed that parameter initializers draw from.</param>
/// <returns>The input state with every entry the function creates added.</returns>
public delegate State InitFunc<T1>(State state, T1 arg1, long? seed = null);

/// <summary>An initializing function (see <see cref="Nj.Init{TResult}(Func{TResult}, bool, string?, string?)"/>, ninjax's init): runs the
/// impure function with create and ignore on and returns the state it populates. Entries that already exist are kept as they are.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <param name="state">The state to start from (<see cref="States.Empty"/> for a fresh model).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="seed">The seed that parameter initializers draw from.</param>
/// <returns>The input state with every entry the function creates added.</returns>
public delegate State InitFunc<T1, T2>(State state, T1 arg1, T2 arg2, long? seed = null);

/// <summary>An initializing function (see <see cref="Nj.Init{TResult}(Func{TResult}, bool, string?, string?)"/>, ninjax's init): runs the
/// impure function with create and ignore on and returns the state it populates. Entries that already exist are kept as they are.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <param name="state">The state to start from (<see cref="States.Empty"/> for a fresh model).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="seed">The seed that parameter initializers draw from.</param>
/// <returns>The input state with every entry the function creates added.</returns>
public delegate State InitFunc<T1, T2, T3>(State state, T1 arg1, T2 arg2, T3 arg3, long? seed = null);

/// <summary>An initializing function (see <see cref="Nj.Init{TResult}(Func{TResult}, bool, string?, string?)"/>, ninjax's init): runs the
/// impure function with create and ignore on and returns the state it populates. Entries that already exist are kept as they are.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="T4">The type of the fourth argument.</typeparam>
/// <param name="state">The state to start from (<see cref="States.Empty"/> for a fresh model).</param>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="arg4">The fourth argument.</param>
/// <param name="seed">The seed that parameter initializers draw from.</param>
/// <returns>The input state with every entry the function creates added.</returns>
public delegate State InitFunc<T1, T2, T3, T4>(State state, T1 arg1, T2 arg2, T3 arg3, T4 arg4, long? seed = null);

/// <summary>A gradient function (see <see cref="Nj.Grad(Func{torch.Tensor}, object[])"/>, ninjax's <c>grad(f, keys)(x, y)</c>):
/// called with the loss function's arguments, it returns the loss, the differentiated entries and their gradients.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <returns>The loss, the entries differentiated (keyed by absolute key) and their gradients (keyed alike).</returns>
public delegate (torch.Tensor Loss, State Params, State Grads) GradFunc<T1>(T1 arg1);

/// <summary>A gradient function (see <see cref="Nj.Grad(Func{torch.Tensor}, object[])"/>, ninjax's <c>grad(f, keys)(x, y)</c>):
/// called with the loss function's arguments, it returns the loss, the differentiated entries and their gradients.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <returns>The loss, the entries differentiated (keyed by absolute key) and their gradients (keyed alike).</returns>
public delegate (torch.Tensor Loss, State Params, State Grads) GradFunc<T1, T2>(T1 arg1, T2 arg2);

/// <summary>A gradient function (see <see cref="Nj.Grad(Func{torch.Tensor}, object[])"/>, ninjax's <c>grad(f, keys)(x, y)</c>):
/// called with the loss function's arguments, it returns the loss, the differentiated entries and their gradients.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <returns>The loss, the entries differentiated (keyed by absolute key) and their gradients (keyed alike).</returns>
public delegate (torch.Tensor Loss, State Params, State Grads) GradFunc<T1, T2, T3>(T1 arg1, T2 arg2, T3 arg3);

/// <summary>A gradient function (see <see cref="Nj.Grad(Func{torch.Tensor}, object[])"/>, ninjax's <c>grad(f, keys)(x, y)</c>):
/// called with the loss function's arguments, it returns the loss, the differentiated entries and their gradients.</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="T4">The type of the fourth argument.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="arg4">The fourth argument.</param>
/// <returns>The loss, the entries differentiated (keyed by absolute key) and their gradients (keyed alike).</returns>
public delegate (torch.Tensor Loss, State Params, State Grads) GradFunc<T1, T2, T3, T4>(T1 arg1, T2 arg2, T3 arg3, T4 arg4);

/// <summary>A gradient function for a loss with an auxiliary output (see <see cref="Nj.GradAux{TAux}(Func{ValueTuple{torch.Tensor, TAux}}, object[])"/>).</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <returns>The loss, the entries differentiated, their gradients and the auxiliary output.</returns>
public delegate (torch.Tensor Loss, State Params, State Grads, TAux Aux) GradAuxFunc<T1, TAux>(T1 arg1);

/// <summary>A gradient function for a loss with an auxiliary output (see <see cref="Nj.GradAux{TAux}(Func{ValueTuple{torch.Tensor, TAux}}, object[])"/>).</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <returns>The loss, the entries differentiated, their gradients and the auxiliary output.</returns>
public delegate (torch.Tensor Loss, State Params, State Grads, TAux Aux) GradAuxFunc<T1, T2, TAux>(T1 arg1, T2 arg2);

/// <summary>A gradient function for a loss with an auxiliary output (see <see cref="Nj.GradAux{TAux}(Func{ValueTuple{torch.Tensor, TAux}}, object[])"/>).</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <returns>The loss, the entries differentiated, their gradients and the auxiliary output.</returns>
public delegate (torch.Tensor Loss, State Params, State Grads, TAux Aux) GradAuxFunc<T1, T2, T3, TAux>(T1 arg1, T2 arg2, T3 arg3);

/// <summary>A gradient function for a loss with an auxiliary output (see <see cref="Nj.GradAux{TAux}(Func{ValueTuple{torch.Tensor, TAux}}, object[])"/>).</summary>
/// <typeparam name="T1">The type of the first argument.</typeparam>
/// <typeparam name="T2">The type of the second argument.</typeparam>
/// <typeparam name="T3">The type of the third argument.</typeparam>
/// <typeparam name="T4">The type of the fourth argument.</typeparam>
/// <typeparam name="TAux">What the function returns beside the loss.</typeparam>
/// <param name="arg1">The first argument.</param>
/// <param name="arg2">The second argument.</param>
/// <param name="arg3">The third argument.</param>
/// <param name="arg4">The fourth argument.</param>
/// <returns>The loss, the entries differentiated, their gradients and the auxiliary output.</returns>
public delegate (torch.Tensor Loss, State Params, State Grads, TAux Aux) GradAuxFunc<T1, T2, T3, T4, TAux>(T1 arg1, T2 arg2, T3 arg3, T4 arg4);
