<?php

namespace Tidings\Laravel\Tests;

use Illuminate\Contracts\Debug\ExceptionHandler;
use Illuminate\Notifications\ChannelManager;
use Illuminate\Support\Facades\DB;
use Tidings\Laravel\Tests\Fixtures\InvoicePaid;
use Tidings\Laravel\Tests\Fixtures\QueuedInvoicePaid;
use Tidings\Laravel\Tests\Fixtures\RecordingHandler;
use Tidings\Laravel\Tests\Fixtures\User;
use Tidings\Laravel\Tidings;
use Tidings\Laravel\TidingsException;

/**
 * A publish that fails after the row committed: reported to the app's exception handler, never
 * raised into the request, and over within a bounded time. Queued notifications raise, so the
 * queue retries them with the same key.
 */
class FailureTest extends TestCase
{
    /** @var RecordingHandler */
    private $handler;

    /** @var resource|null */
    private $silent;

    protected function setUp(): void
    {
        parent::setUp();
        $this->handler = new RecordingHandler();
        $this->app->instance(ExceptionHandler::class, $this->handler);
    }

    protected function tearDown(): void
    {
        if ($this->silent !== null) {
            fclose($this->silent);
        }
        parent::tearDown();
    }

    /** The package's defaults (config/tidings.php), against the given URL and key. */
    private function useTidings(string $url, string $key): void
    {
        $config = require __DIR__ . '/../config/tidings.php';
        $tidings = new Tidings($url, $key, getenv('TIDINGS_SECRET'), (float) $config['timeout'], (int) $config['retries'], null, (float) $config['connect_timeout']);
        $this->app->instance(Tidings::class, $tidings);
        $this->app->forgetInstance(ChannelManager::class);
    }

    /** A port where the kernel accepts connections that nobody ever answers. */
    private function silentHost(): string
    {
        $this->silent = stream_socket_server('tcp://127.0.0.1:0');

        return 'http://' . stream_socket_get_name($this->silent, false);
    }

    /** @return array<string, array{string, string}> */
    public function failures(): array
    {
        return [
            'tidings down' => ['down', 'network_error'],
            'host not answering' => ['silent', 'network_error'],
            'publisher key refused (403)' => ['key', 'forbidden'],
            'invalid notification (422)' => ['invalid', 'invalid_notification'],
        ];
    }

    /** @dataProvider failures */
    public function testAFailedPublishIsReportedNotRaisedAndBounded(string $case, string $error): void
    {
        $url = rtrim(getenv('TIDINGS_URL'), '/');
        $key = getenv('TIDINGS_PUBLISHER_KEY');
        if ($case === 'down') {
            $url = 'http://127.0.0.1:9';
        } elseif ($case === 'silent') {
            $url = $this->silentHost();
        } elseif ($case === 'key') {
            $key = 'not-a-publisher-key';
        }
        $this->useTidings($url, $key);
        $notification = new InvoicePaid(11);
        if ($case === 'invalid') {
            $notification = new class(11) extends InvoicePaid {
                public function toTidings($notifiable): array
                {
                    return ['message' => 'bad link', 'link' => 'javascript:alert(1)'];
                }
            };
        }
        $start = microtime(true);
        DB::transaction(function () use ($notification) {
            (new User(['id' => 'laravel-failure']))->notify($notification);
        });
        $took = microtime(true) - $start;

        $this->assertCount(1, $this->handler->reported);
        $reported = $this->handler->reported[0];
        $this->assertInstanceOf(TidingsException::class, $reported);
        $this->assertSame($error, $reported->error, $reported->getMessage());
        // (retries + 1) × timeout + backoff (under a second), with config/tidings.php's defaults.
        $config = require __DIR__ . '/../config/tidings.php';
        $this->assertLessThan(($config['retries'] + 1) * $config['timeout'] + 1.5, $took);
    }

    public function testAQueuedNotificationRaisesSoTheQueueRetriesIt(): void
    {
        $this->useTidings('http://127.0.0.1:9', getenv('TIDINGS_PUBLISHER_KEY'));
        $this->expectException(TidingsException::class);
        // What the queue worker runs for a ShouldQueue notification.
        (new User(['id' => 'laravel-queued']))->notifyNow(new QueuedInvoicePaid(12));
    }
}
