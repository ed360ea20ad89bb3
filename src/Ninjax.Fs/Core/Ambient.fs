namespace Ninjax

open System
open System.Threading

/// One purified call (or one impure stretch inside a program) in progress: its environment and
/// its world, which impure code advances by running Prog operations against it. A frame belongs
/// to the thread that opened it and closes when its stretch returns: the world it holds is
/// handed on then, so a later write to it would be lost.
[<Sealed; AllowNullLiteral>]
type Frame internal (env: Env, world: World, parent: Frame) =
    let thread = Environment.CurrentManagedThreadId
    let mutable closed = false
    /// The environment of the call.
    member _.Env = env
    /// The world as impure code has advanced it so far.
    member val World = world with get, set
    /// The frame this one runs inside, or null.
    member _.Parent = parent
    /// The managed thread the frame runs on.
    member _.Thread = thread
    /// True once the stretch of impure code the frame serves has returned.
    member _.Closed = closed
    /// Marks the frame's stretch as returned.
    member internal _.Close() = closed <- true

/// The ambient context that impure code (modules calling Get and Put) runs against. It is an
/// interpreter of Prog: every impure operation is a Prog operation run on the current frame.
/// Frames are per thread and per async flow, so parallel purified calls never see each other.
module Ambient =

    let private current = AsyncLocal<Frame>()

    // The name scope entered outside any purified call (Nj.scope while building modules).
    let private outside = AsyncLocal<string>()

    /// The innermost frame, or null outside any purified call.
    let tryCurrent () : Frame = current.Value

    /// The current name scope: the innermost call's, or the one entered outside any call ("" is
    /// the root). Entries resolve under it, and modules constructed by name take their paths
    /// under it, as in ninjax.
    let currentScope () : string =
        match current.Value with
        | null -> match outside.Value with null -> "" | s -> s
        | f -> f.Env.Scope

    /// The language of the code calling Ninjax, for an error message: the current call's (free)
    /// inside a purified call, else found by walking the stack (error paths only).
    let language () : Language =
        match current.Value with
        | null -> Caller.fromStack ()
        | f -> f.Env.Language

    /// The innermost frame; a clear error outside any purified call.
    let currentFrame () : Frame =
        match current.Value with
        | null ->
            raise (
                InvalidOperationException(
                    sprintf
                        "No Ninjax context: state can only be read or written inside a purified call. Wrap the function with %s and call that."
                        (Text.code (Caller.fromStack ()) "Nj.purify or Nj.init" "Nj.Pure or Nj.Init")
                )
            )
        | f -> f

    /// Makes a new frame current; pair with pop in a finally.
    let push (env: Env) (world: World) : Frame =
        let f = Frame(env, world, current.Value)
        current.Value <- f
        f

    /// Restores the frame that was current before this one.
    let pop (frame: Frame) : unit =
        frame.Close()
        current.Value <- frame.Parent

    /// The frame impure code may use now: the innermost one, open and on its own thread. State
    /// written from elsewhere would be lost (a write after an await, when the call has already
    /// returned, or from a Parallel.For or Task.Run worker racing the call's own thread), so it
    /// is refused with a message naming the call.
    let internal usableFrame () : Frame =
        let frame = currentFrame ()
        if frame.Closed then
            raise (
                InvalidOperationException(
                    sprintf
                        "%s has already returned: this state access ran after the call ended (after an await, or in a task or callback that outlived the call), and its writes would be lost. Finish all state access before the purified function returns; a purified function cannot await and then use the state."
                        frame.Env.Name
                )
            )
        if frame.Thread <> Environment.CurrentManagedThreadId then
            raise (
                InvalidOperationException(
                    sprintf
                        "State access from thread %d inside %s, which runs on thread %d: a purified call's state may only be used from the thread that called it (Parallel.For, Task.Run and continuations on other threads would race it and lose writes). Compute in parallel, then read and write the state on the calling thread."
                        Environment.CurrentManagedThreadId frame.Env.Name frame.Thread
                )
            )
        frame

    /// Runs a program against the current frame and advances it: the impure interpreter.
    let exec (program: Nj<'T>) : 'T =
        let frame = usableFrame ()
        let struct (value, world) = Prog.runIn frame.Env frame.World program
        frame.World <- world
        value

    /// Turns impure code into a program: it runs in a frame holding the program's world, and the
    /// world it leaves behind is the program's result world.
    let ofImpure (thunk: unit -> 'T) : Nj<'T> =
        Nj(fun env world ->
            let frame = push env world
            try
                let value = thunk ()
                struct (value, frame.World)
            finally
                pop frame)

    /// Runs impure code in an absolute name scope: inside a call its entries resolve under it
    /// (Prog.scopeAt), and anywhere the modules it constructs by name take their paths under it.
    let inScope (path: string) (f: unit -> 'T) : 'T =
        match current.Value with
        | null ->
            let before = outside.Value
            outside.Value <- path
            try
                f ()
            finally
                outside.Value <- before
        | _ -> exec (Prog.scopeAt path (ofImpure f))
